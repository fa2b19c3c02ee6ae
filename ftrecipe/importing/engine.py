"""Run a format's table over a source config and write the commented recipe.

Every key of the source ends in exactly one list: carried (a recipe value with a ``# from:`` comment
beside it), read (its value is what ftrecipe does anyway), left empty (null, as if absent) or not
carried over (with the reason, listed at the top of the recipe). The source tool's defaults that
differ from ftrecipe's are written with a ``# <tool> default`` comment. The recipe is a ruamel.yaml
``CommentedMap``, so each comment sits beside its value. Torch-free.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ftrecipe.importing.table import Context, Format, NotCarried, Nothing
from ftrecipe.yamlio import Mark, load_yaml

SECTIONS = ("name", "model", "freeze", "head", "data", "training", "hardware", "evaluation", "output", "tracking")
"""Top-level order of a recipe, as the shipped recipes write it."""


ABSENT = "(not in the config)"
"""The value shown for a key the config leaves out (a source default not carried over)."""


class SourceError(Exception):
    """The source config cannot be read (not YAML, not a mapping): ``file:line:col: message``."""


@dataclass(frozen=True)
class Dropped:
    """A source key not carried over, where it is in the source file and why."""

    key: str
    value: Any
    kind: str
    reason: str
    mark: Mark | None

    def located(self, source: str) -> str:
        where = f"{source}:{self.mark.line}:{self.mark.col}" if self.mark else source
        return f"{where}: {self.key}: not carried over ({self.kind}): {self.reason}"


@dataclass
class Imported:
    """The recipe text and the account of every source key."""

    source: str
    fmt: Format
    text: str = ""
    values: dict[str, tuple[Any, str]] = field(default_factory=dict)
    carried: list[str] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    defaults: list[str] = field(default_factory=list)


def short(value: Any, limit: int = 60) -> str:
    """A value as one short line (YAML-like scalars, compact JSON for lists and maps)."""
    if value is ABSENT:
        return ABSENT
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(", ", ": "), default=str)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def key_path(dotted: str) -> tuple[str | int, ...]:
    """``datasets[0].path`` -> ``("datasets", 0, "path")`` (positions in :class:`LoadedYaml` use tuples)."""
    return tuple(int(index) if index else name for name, index in _PART.findall(dotted))


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in key_path(dotted):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _walk(fmt: Format, data: Mapping[str, Any], prefix: str, ctx: Context, result: Imported) -> None:
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        row = fmt.row(dotted)
        if row is None and isinstance(value, Mapping) and value:
            _walk(fmt, value, dotted, ctx, result)
            continue
        if value is None or value == {} or value == []:
            result.empty.append(dotted)
            continue
        if row is None:
            ctx.drop(dotted, "no equivalent", fmt.unknown)
            continue
        if row.kind is not None or row.convert is None:
            ctx.drop(dotted, row.kind or "no equivalent", row.how)
            continue
        try:
            converted = row.convert(value, ctx)
        except NotCarried as error:
            ctx.drop(dotted, error.kind, error.reason)
            continue
        origin = f"{dotted}: {short(value)}"
        if isinstance(converted, Nothing):
            ctx.kept.append((dotted, converted.why))
            continue
        try:
            if row.target is None:
                for target, item in converted.items():
                    ctx.set(target, item, origin)
            else:
                ctx.set(row.target, converted, origin)
        except NotCarried as error:
            ctx.drop(dotted, error.kind, error.reason)
            continue
        result.carried.append(dotted)


def convert(fmt: Format, text: str, source: str) -> Imported:
    """Import one config's text; raises :class:`SourceError` if it is not a readable YAML mapping."""
    loaded = load_yaml(text)
    if loaded.problems:
        problem = loaded.problems[0]
        raise SourceError(f"{source}:{problem.mark.line}:{problem.mark.col}: {problem.message}")
    data = loaded.data
    result = Imported(source=source, fmt=fmt)
    ctx = Context(data)
    for target, (value, why) in fmt.skeleton.items():
        ctx.values[target] = (value, why)
    _walk(fmt, data, "", ctx, result)
    for default in fmt.defaults:
        if default.target in ctx.values or _lookup(data, default.source_key) is not None or not default.when(data):
            continue
        origin = f"{fmt.tool} default where the config sets none: {default.source_key}: {short(default.source_value)}"
        value = default.value(data) if callable(default.value) else default.value
        ctx.values[default.target] = (value, origin)
        result.defaults.append(default.target)
    if fmt.finish is not None:
        fmt.finish(ctx)
    result.values = ctx.values
    result.kept = ctx.kept
    dropped_keys = {dropped[0] for dropped in ctx.dropped}
    result.empty = [key for key in result.empty if key not in dropped_keys]
    result.notes = ctx.notes
    result.dropped = [Dropped(key, _lookup(data, key) if key_path(key) in loaded.keys else ABSENT, kind, reason,
                              loaded.locate(key_path(key), prefer_key=True))
                      for key, kind, reason in ctx.dropped]
    return result


# ---------------------------------------------------------------- writing


FIRST = ("modality", "format", "strategy", "base")
"""Keys written first within their section, as the shipped recipes do (the discriminator, then the base)."""


def _order(dotted: str) -> tuple[int, int]:
    parts = dotted.split(".")
    section = SECTIONS.index(parts[0]) if parts[0] in SECTIONS else len(SECTIONS)
    return section, FIRST.index(parts[-1]) if parts[-1] in FIRST and len(parts) == 2 else len(FIRST)


def _nested(values: Mapping[str, tuple[Any, str]]) -> CommentedMap:
    """Dotted keys -> nested CommentedMaps (sections in recipe order), each value commented with its origin."""
    root = CommentedMap()
    column = 2 + max((2 * dotted.count(".") + len(dotted.rsplit(".", 1)[-1]) + 2 + len(short(value, 200))
                      for dotted, (value, _) in values.items()), default=0)
    for dotted in sorted(values, key=_order):  # stable: the table's order within a section
        value, origin = values[dotted]
        *parents, last = dotted.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, CommentedMap())
        if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        node[last] = value
        if origin:
            node.yaml_add_eol_comment(origin, last, column=min(column, 60))
    return root


def header(result: Imported, recipe_path: str, command: str) -> list[str]:
    """The recipe's opening comment: how it runs, where it came from, and every key not carried over."""
    fmt = result.fmt
    lines = [f"ftrecipe run {recipe_path}", "", *textwrap.wrap(
        f"Imported from the {fmt.tool} config {result.source} by: {command}", 110, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False),
             "'# from: key: value' beside a value names the source key it was taken from; "
             f"'# {fmt.tool} default' marks the source tool's default for a key",
             "the config leaves out, written because ftrecipe's default differs."]
    if result.dropped:
        lines += ["", f"Not carried over ({len(result.dropped)}):"]
        for item in result.dropped:
            where = f" (line {item.mark.line})" if item.mark else ""
            lines += textwrap.wrap(f"{item.key}: {short(item.value, 40)}{where}: {item.kind}: {item.reason}", 110,
                                   initial_indent="  ", subsequent_indent="      ",
                                   break_on_hyphens=False)
    else:
        lines += ["", "Not carried over: nothing."]
    if result.notes:
        lines += ["Carried with a difference:"]
        lines += [line for key, text in result.notes
                  for line in textwrap.wrap(f"{key}: {text}", 110, initial_indent="  ", subsequent_indent="      ",
                                   break_on_hyphens=False)]
    if result.kept:
        lines += ["Read, and already what ftrecipe does:"]
        lines += [line for key, why in result.kept
                  for line in textwrap.wrap(f"{key}: {why}", 110, initial_indent="  ", subsequent_indent="      ",
                                   break_on_hyphens=False)]
    if result.empty:
        lines += textwrap.wrap(f"Empty in the source (as if absent): {', '.join(result.empty)}", 110,
                               subsequent_indent="  ", break_on_hyphens=False)
    return lines


def render_recipe(result: Imported, recipe_path: str, command: str) -> str:
    """The recipe text: the header comment, then the values with their comments."""
    name = (Path(recipe_path).stem, "the recipe's file name")
    root = _nested({"name": name, **result.values})
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "null"))
    stream = io.StringIO()
    yaml.dump(root, stream)
    head = "".join(f"# {line}\n" if line else "#\n" for line in header(result, recipe_path, command))
    return head + stream.getvalue()
