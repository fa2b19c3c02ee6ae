"""Turn raw rows into (prompt, completion) pairs.

Three forms are supported, matching the recipe's ``format.form``:

``completion``
    Columns ``prompt`` and ``completion``. With a template, the prompt is the template
    filled from the row and the ``prompt`` column is only needed if the template uses it.
``instruction``
    Columns ``instruction``, optional ``input`` and ``output`` (the completion), rendered
    with an Alpaca-style prompt unless a template is given.
``chat``
    Column ``messages``: a list of ``{"role", "content"}`` dicts. Everything before the
    last assistant turn is rendered with the tokenizer's chat template (with the
    generation prompt), the last assistant content is the completion.

Template placeholders (``{schema}``, ``{question}``) are looked up first among the row's
own columns, then among the canonical names of the form (so ``{prompt}`` works with a
column mapping). Pure Python; the tokenizer is only needed for ``chat``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from .records import FormatError, column_name, get_column

__all__ = [
    "FORMS",
    "DEFAULT_INSTRUCTION_TEMPLATE",
    "DEFAULT_INSTRUCTION_TEMPLATE_NO_INPUT",
    "Form",
    "fill_template",
    "template_fields",
    "render_example",
    "render_examples",
]

Form = Literal["completion", "instruction", "chat"]
FORMS: Final[tuple[str, ...]] = ("completion", "instruction", "chat")

#: Canonical column names each form reads (what ``columns:`` may map).
CANONICAL_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "completion": ("prompt", "completion"),
    "instruction": ("instruction", "input", "output"),
    "chat": ("messages",),
}

DEFAULT_INSTRUCTION_TEMPLATE: Final[str] = (
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
DEFAULT_INSTRUCTION_TEMPLATE_NO_INPUT: Final[str] = "### Instruction:\n{instruction}\n\n### Response:\n"


def template_fields(template: str) -> list[str]:
    """Return the top-level placeholder names of a ``str.format`` template, in order.

    Raises ValueError for a malformed template or positional fields (``{}``, ``{0}``),
    which cannot be filled from a row.
    """
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from exc
    for _literal, field, _spec, _conv in parsed:
        if field is None:
            continue
        root = field.split(".", 1)[0].split("[", 1)[0]
        if root == "" or root.isdigit():
            raise ValueError(f"template {template!r} has a positional field {{{field}}}; name every placeholder")
        if root not in names:
            names.append(root)
    return names


def fill_template(template: str, values: Mapping[str, Any], *, row_index: int | None = None) -> str:
    """Fill ``template`` from ``values``; a missing or null placeholder raises FormatError."""
    for name in template_fields(template):
        if values.get(name) is None:
            state = "is null" if name in values else "has no matching column"
            available = ", ".join(repr(k) for k in values.keys()) or "(none)"
            raise FormatError(row_index, f"template placeholder {{{name}}} {state}; available columns: {available}")
    try:
        return template.format_map(values)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        raise FormatError(row_index, f"cannot fill template: {exc!r}") from exc


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _namespace(row: Mapping[str, Any], form: str, columns: Mapping[str, str] | None) -> dict[str, Any]:
    """Row columns plus canonical aliases (row columns win on a clash)."""
    ns: dict[str, Any] = dict(row)
    for canonical in CANONICAL_COLUMNS[form]:
        name = column_name(canonical, columns)
        if canonical not in ns and name in row:
            ns[canonical] = row[name]
    return ns


def _render_chat(
    row: Mapping[str, Any], columns: Mapping[str, str] | None, tokenizer: Any, row_index: int | None
) -> tuple[str, str]:
    messages = get_column(row, "messages", columns, row_index=row_index)
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise FormatError(row_index, f"'messages' must be a list of {{role, content}} dicts, got {type(messages).__name__}")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise FormatError(row_index, f"message {i} is not a {{role, content}} dict: {m!r}")
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise FormatError(row_index, "chat row has no assistant message to learn from")
    if last != len(messages) - 1:
        raise FormatError(
            row_index,
            f"chat row has {len(messages) - 1 - last} message(s) after the last assistant turn; "
            "the last message must be the assistant's answer",
        )
    if tokenizer is None:
        raise ValueError("form 'chat' needs a tokenizer with a chat template")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("form 'chat': the tokenizer has no chat_template")
    history = [{"role": m["role"], "content": _as_text(m["content"])} for m in messages[:last]]
    prompt = tokenizer.apply_chat_template(history, tokenize=False, add_generation_prompt=True)
    return str(prompt), _as_text(messages[last]["content"])


def render_example(
    row: Mapping[str, Any],
    *,
    form: str,
    columns: Mapping[str, str] | None = None,
    template: str | None = None,
    tokenizer: Any = None,
    row_index: int | None = None,
) -> tuple[str, str]:
    """Render one raw row as ``(prompt, completion)``.

    Args:
        row: the raw record (column name -> value).
        form: ``"completion"``, ``"instruction"`` or ``"chat"``.
        columns: canonical name -> the file's column name (unmapped names are used as is).
        template: optional ``str.format`` prompt template filled from the row; not
            allowed with ``chat`` (the tokenizer's chat template renders the prompt).
        tokenizer: needed only for ``chat`` (its ``apply_chat_template``).
        row_index: reported in :class:`FormatError` messages.

    Raises:
        FormatError: the row lacks a needed column or placeholder value.
        ValueError: the configuration itself is wrong (unknown form, template with chat,
            chat without a tokenizer chat template).
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {', '.join(FORMS)}")
    if form == "chat":
        if template is not None:
            raise ValueError("form 'chat' renders prompts with the tokenizer's chat template; drop 'template'")
        return _render_chat(row, columns, tokenizer, row_index)

    if form == "completion":
        completion = get_column(row, "completion", columns, row_index=row_index)
        if template is None:
            prompt = _as_text(get_column(row, "prompt", columns, row_index=row_index))
        else:
            prompt = fill_template(template, _namespace(row, form, columns), row_index=row_index)
        return prompt, _as_text(completion)

    # instruction
    completion = get_column(row, "output", columns, row_index=row_index)
    if template is None:
        instruction = _as_text(get_column(row, "instruction", columns, row_index=row_index))
        extra = _as_text(get_column(row, "input", columns, row_index=row_index, required=False, default=""))
        if extra.strip():
            prompt = DEFAULT_INSTRUCTION_TEMPLATE.format(instruction=instruction, input=extra)
        else:
            prompt = DEFAULT_INSTRUCTION_TEMPLATE_NO_INPUT.format(instruction=instruction)
    else:
        ns = _namespace(row, form, columns)
        if ns.get("input") is None:  # 'input' is optional in this form
            ns["input"] = ""
        prompt = fill_template(template, ns, row_index=row_index)
    return prompt, _as_text(completion)


def render_examples(
    rows: Iterable[Mapping[str, Any]],
    *,
    form: str,
    columns: Mapping[str, str] | None = None,
    template: str | None = None,
    tokenizer: Any = None,
) -> list[tuple[str, str]]:
    """Render every row (see :func:`render_example`); errors carry the row's index."""
    return [
        render_example(row, form=form, columns=columns, template=template, tokenizer=tokenizer, row_index=i)
        for i, row in enumerate(rows)
    ]
