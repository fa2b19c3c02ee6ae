"""Tokenise (prompt, completion) pairs for completion-only loss, and pad them into batches.

Semantics (decided here, relied on by packing and the task):

* Prompt and completion are tokenised separately and concatenated, so the label
  boundary is exact. The prompt gets the tokenizer's own leading special tokens (e.g. a
  BOS added by its post-processor); the completion gets none, and one EOS is appended so
  the model learns to stop.
* Labels are ``-100`` on the leading specials and the prompt: loss on the completion only.
* Truncation, when ``prompt + completion + EOS`` exceeds ``max_length``: first drop prompt
  tokens from the *left* (keeping the leading specials), because the end of a prompt (the
  question, the generation cue) matters most for the answer; only if the whole prompt is
  gone is the completion cut from the *right* (its EOS is then lost, so a cut answer never
  teaches the model to stop early). Every example says whether it was truncated, and
  :func:`tokenize_examples` counts them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "IGNORE_INDEX",
    "TokenizedExample",
    "TokenizeReport",
    "tokenize_example",
    "tokenize_examples",
    "pad_collate",
]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    """One training example: ``labels`` is ``input_ids`` with non-loss positions at -100."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False
    #: True when the completion itself had to be cut (the prompt was dropped entirely).
    completion_truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_loss_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


@dataclass
class TokenizeReport:
    """Examples plus truncation counts, for the run log."""

    examples: list[TokenizedExample] = field(default_factory=list)
    num_truncated: int = 0
    num_completion_truncated: int = 0

    @property
    def truncated_fraction(self) -> float:
        return self.num_truncated / len(self.examples) if self.examples else 0.0


_BATCH = 1024  # pairs encoded per tokenizer call in tokenize_examples: one call each, not three per pair


def _encode(tokenizer: Any, texts: list[str], add_special_tokens: bool) -> list[list[int]]:
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]]


def _leading_specials(with_special: list[int], plain: list[int], eos: int) -> tuple[list[int], list[int]]:
    """Split a prompt's encoding with specials into (leading special tokens, prompt tokens), given its
    encoding without them.

    The tokenizer's post-processor decides the specials (a Llama-style BOS, or none for
    GPT-2 style). Trailing specials it might add (an EOS after the prompt) are dropped:
    they would sit between prompt and completion.
    """
    n = len(plain)
    if n == 0:
        return [t for t in with_special if t != eos], []
    for start in range(len(with_special) - n + 1):
        if with_special[start : start + n] == plain:
            return with_special[:start], plain
    return [], plain  # post-processor rewrote tokens: fall back to no specials


def _eos(tokenizer: Any) -> int:
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id; completions need an EOS to stop")
    return eos


def _assemble(specials: list[int], prompt_ids: list[int], completion_ids: list[int], max_length: int) -> TokenizedExample:
    """Lay out one example from its encoded parts (``completion_ids`` ends with the EOS): truncation and
    labels as the module doc says."""
    if max_length <= len(specials):
        raise ValueError(f"max_length={max_length} leaves no room after {len(specials)} leading special token(s)")
    truncated = completion_truncated = False
    budget = max_length - len(specials)
    if len(prompt_ids) + len(completion_ids) > budget:
        truncated = True
        keep_prompt = max(0, budget - len(completion_ids))
        prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :] if keep_prompt else []
        if len(completion_ids) > budget:
            completion_truncated = True
            completion_ids = completion_ids[:budget]

    input_ids = specials + prompt_ids + completion_ids
    labels = [IGNORE_INDEX] * (len(specials) + len(prompt_ids)) + completion_ids
    return TokenizedExample(input_ids, labels, truncated, completion_truncated)


def tokenize_example(tokenizer: Any, prompt: str, completion: str, max_length: int) -> TokenizedExample:
    """Tokenise one pair with completion-only labels and explicit truncation (see module doc).

    Raises ValueError when the tokenizer has no EOS token or ``max_length`` leaves no room
    for at least one completion token after the leading specials.
    """
    return tokenize_examples(tokenizer, [(prompt, completion)], max_length).examples[0]


def tokenize_examples(
    tokenizer: Any, pairs: Iterable[tuple[str, str]], max_length: int
) -> TokenizeReport:
    """Tokenise many pairs, counting truncations (see :func:`tokenize_example`). The tokenizer encodes
    them a batch at a time: three calls per batch instead of three per pair (each call's own overhead was
    a tenth to a quarter of the time on short SQL pairs)."""
    report = TokenizeReport()
    pairs = list(pairs)
    if not pairs:
        return report
    eos = _eos(tokenizer)
    for first in range(0, len(pairs), _BATCH):
        prompts, completions = map(list, zip(*pairs[first : first + _BATCH]))
        encoded = zip(_encode(tokenizer, prompts, True), _encode(tokenizer, prompts, False),
                      _encode(tokenizer, completions, False))
        for with_special, plain, completion_ids in encoded:
            specials, prompt_ids = _leading_specials(with_special, plain, eos)
            ex = _assemble(specials, prompt_ids, completion_ids + [eos], max_length)
            report.examples.append(ex)
            report.num_truncated += ex.truncated
            report.num_completion_truncated += ex.completion_truncated
    return report


def pad_collate(
    examples: Sequence[TokenizedExample],
    pad_id: int,
    *,
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Right-pad a batch: ``input_ids`` with ``pad_id``, ``labels`` with -100, and a 2D
    ``attention_mask`` (1 = real token). Returns int64 tensors of shape (B, L)."""
    import torch

    if not examples:
        raise ValueError("pad_collate got an empty batch")
    length = max(len(ex) for ex in examples)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of
    n = len(examples)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, length), dtype=torch.long)
    for i, ex in enumerate(examples):
        k = len(ex)
        input_ids[i, :k] = torch.tensor(ex.input_ids, dtype=torch.long)
        labels[i, :k] = torch.tensor(ex.labels, dtype=torch.long)
        attention_mask[i, :k] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
