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


def _encode(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def _leading_specials(tokenizer: Any, prompt: str) -> tuple[list[int], list[int]]:
    """Split the prompt's encoding into (leading special tokens, prompt tokens).

    The tokenizer's post-processor decides the specials (a Llama-style BOS, or none for
    GPT-2 style). Trailing specials it might add (an EOS after the prompt) are dropped:
    they would sit between prompt and completion.
    """
    with_special = _encode(tokenizer, prompt, True)
    plain = _encode(tokenizer, prompt, False)
    n = len(plain)
    if n == 0:
        specials = [t for t in with_special if t != getattr(tokenizer, "eos_token_id", None)]
        return specials, []
    for start in range(len(with_special) - n + 1):
        if with_special[start : start + n] == plain:
            return with_special[:start], plain
    return [], plain  # post-processor rewrote tokens: fall back to no specials


def tokenize_example(tokenizer: Any, prompt: str, completion: str, max_length: int) -> TokenizedExample:
    """Tokenise one pair with completion-only labels and explicit truncation (see module doc).

    Raises ValueError when the tokenizer has no EOS token or ``max_length`` leaves no room
    for at least one completion token after the leading specials.
    """
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id; completions need an EOS to stop")
    specials, prompt_ids = _leading_specials(tokenizer, prompt)
    completion_ids = _encode(tokenizer, completion, False) + [eos]
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


def tokenize_examples(
    tokenizer: Any, pairs: Iterable[tuple[str, str]], max_length: int
) -> TokenizeReport:
    """Tokenise many pairs, counting truncations (see :func:`tokenize_example`)."""
    report = TokenizeReport()
    for prompt, completion in pairs:
        ex = tokenize_example(tokenizer, prompt, completion, max_length)
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
