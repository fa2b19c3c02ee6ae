"""Sequence packing: several tokenised examples per row, without cross-example attention.

Packing (``pack_examples``):
  * ``"bfd"`` (default), best-fit decreasing: examples sorted longest first, each put in
    the open row with the least room that still fits it (ties by creation order). It packs
    about as tightly as first-fit decreasing, runs in O(n log n), and is deterministic.
    It reorders examples, which is harmless for shuffled training.
  * ``"sequential"``: keep the input order, start a new row when the next example does
    not fit. Use it when order matters (e.g. evaluation bookkeeping).
  An example longer than ``seq_len`` is an error: truncate first
  (:func:`ftrecipe_text.tokenization.tokenize_example` with ``max_length <= seq_len``).
  The first label of each packed example is set to -100: unpacked, the first token is
  never a target, and packed it would be predicted from the previous example.

Collating (``packed_collate``) returns ``input_ids``, ``labels`` and ``position_ids`` that
restart at 0 for each example, plus ``use_cache=False``, and no attention mask. From those
position ids Transformers 5 (``masking_utils.find_packed_sequence_indices``) builds the
block-diagonal causal mask itself, on the device, for eager, sdpa and flex attention, and
flash-attention runs its variable-length kernel; it does so only when no attention mask and
no KV cache are given, hence ``use_cache=False``. Padding slots get position 0, so each is a
block of its own, and label -100. Models whose code builds its own mask (some remote-code
architectures) or uses ALiBi positions cannot be packed this way; the causal-LM task
refuses them before training.

Padding accounting (``PaddingStats``) measures the share of batch slots that are padding,
for padded batching (``padded_stats``) and for packed batching (``packed_stats``).
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ftrecipe.plugin import RecipeRuntimeError

from .tokenization import IGNORE_INDEX, TokenizedExample

__all__ = [
    "PackedSequence",
    "PaddingStats",
    "pack_examples",
    "packed_collate",
    "padded_stats",
    "packed_stats",
    "compare_padding",
]


@dataclass(frozen=True)
class PackedSequence:
    """One packed row: concatenated examples and their lengths (in order)."""

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    lengths: tuple[int, ...]
    #: indices of the packed examples in the list given to :func:`pack_examples`.
    example_indices: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def segment_ids(self) -> list[int]:
        """Per token, the position of its example within this row (0, 0, 1, 1, 1, ...)."""
        return [k for k, n in enumerate(self.lengths) for _ in range(n)]


def _build(examples: Sequence[TokenizedExample], indices: list[int]) -> PackedSequence:
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    for i in indices:
        ex = examples[i]
        input_ids.extend(ex.input_ids)
        labels.append(IGNORE_INDEX)
        labels.extend(ex.labels[1:])
        position_ids.extend(range(len(ex)))
    return PackedSequence(
        input_ids, labels, position_ids, tuple(len(examples[i]) for i in indices), tuple(indices)
    )


def pack_examples(
    examples: Sequence[TokenizedExample],
    seq_len: int,
    *,
    strategy: Literal["bfd", "sequential"] = "bfd",
) -> list[PackedSequence]:
    """Pack examples into rows of at most ``seq_len`` tokens (see module doc)."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    for i, ex in enumerate(examples):
        if len(ex) > seq_len:
            raise ValueError(f"example {i} has {len(ex)} tokens > seq_len={seq_len}; truncate it first")
        if len(ex) == 0:
            raise ValueError(f"example {i} is empty")

    bins: list[list[int]] = []
    if strategy == "sequential":
        used = 0
        for i, ex in enumerate(examples):
            if not bins or used + len(ex) > seq_len:
                bins.append([])
                used = 0
            bins[-1].append(i)
            used += len(ex)
    elif strategy == "bfd":
        order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]), i))
        # open rows as a sorted list of (room left, row index)
        rooms: list[tuple[int, int]] = []
        for i in order:
            n = len(examples[i])
            pos = bisect.bisect_left(rooms, (n, -1))
            if pos < len(rooms):
                room, b = rooms.pop(pos)
            else:
                room, b = seq_len, len(bins)
                bins.append([])
            bins[b].append(i)
            if room - n > 0:
                bisect.insort(rooms, (room - n, b))
    else:
        raise ValueError(f"unknown packing strategy {strategy!r}; use 'bfd' or 'sequential'")
    return [_build(examples, b) for b in bins]


def packed_collate(batch: Sequence[PackedSequence], pad_id: int, *, pad_to: int | None = None) -> dict[str, Any]:
    """Collate packed rows into model inputs: ids, labels, per-example position ids, no cache.

    Args:
        batch: packed rows.
        pad_id: token id for padding slots (their labels are -100, their positions 0).
        pad_to: pad every row to this length (default: the longest row).
    """
    import torch

    if not batch:
        raise ValueError("packed_collate got an empty batch")
    longest = max(len(row) for row in batch)
    length = longest if pad_to is None else pad_to
    if length < longest:
        raise ValueError(f"pad_to={pad_to} is shorter than the longest packed row ({longest})")
    n = len(batch)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    labels = torch.full((n, length), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((n, length), dtype=torch.long)
    for i, row in enumerate(batch):
        k = len(row)
        input_ids[i, :k] = torch.tensor(row.input_ids, dtype=torch.long)
        labels[i, :k] = torch.tensor(row.labels, dtype=torch.long)
        position_ids[i, :k] = torch.tensor(row.position_ids, dtype=torch.long)
    # Examples are separated by their position ids alone; Transformers looks for that only without a cache.
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "use_cache": False}


def flattened_collate(batch: Sequence[PackedSequence]) -> dict[str, Any]:
    """Packed rows laid end to end in one row, without padding: FlashAttention's variable-length kernel
    reads the examples' boundaries from the position ids (Transformers does so for one row only)."""
    import torch

    if not batch:
        raise ValueError("flattened_collate got an empty batch")

    def joined(field: str) -> Any:
        return torch.tensor([value for row in batch for value in getattr(row, field)], dtype=torch.long)[None]

    return {"input_ids": joined("input_ids"), "labels": joined("labels"), "position_ids": joined("position_ids"),
            "use_cache": False}


@dataclass(frozen=True)
class PaddingStats:
    """Real tokens vs batch slots; add instances to accumulate over batches."""

    real_tokens: int = 0
    total_tokens: int = 0

    @property
    def pad_tokens(self) -> int:
        return self.total_tokens - self.real_tokens

    @property
    def padding_fraction(self) -> float:
        return self.pad_tokens / self.total_tokens if self.total_tokens else 0.0

    def __add__(self, other: PaddingStats) -> PaddingStats:
        return PaddingStats(self.real_tokens + other.real_tokens, self.total_tokens + other.total_tokens)


def _round_up(n: int, multiple: int | None) -> int:
    return -(-n // multiple) * multiple if multiple else n


def padded_stats(examples: Sequence[TokenizedExample], *, pad_to_multiple_of: int | None = None) -> PaddingStats:
    """Padding of one batch as :func:`~ftrecipe_text.tokenization.pad_collate` builds it."""
    if not examples:
        return PaddingStats()
    length = _round_up(max(len(ex) for ex in examples), pad_to_multiple_of)
    return PaddingStats(sum(len(ex) for ex in examples), length * len(examples))


def packed_stats(batch: Sequence[PackedSequence], *, pad_to: int | None = None) -> PaddingStats:
    """Padding of one batch as :func:`packed_collate` builds it."""
    if not batch:
        return PaddingStats()
    length = pad_to if pad_to is not None else max(len(row) for row in batch)
    return PaddingStats(sum(len(row) for row in batch), length * len(batch))


def _chunks(seq: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def compare_padding(
    examples: Sequence[TokenizedExample],
    *,
    batch_size: int,
    seq_len: int,
    strategy: Literal["bfd", "sequential"] = "bfd",
) -> tuple[PaddingStats, PaddingStats]:
    """Padding over a whole dataset: (padded batching in order, packed batching).

    Padded batches hold ``batch_size`` examples; packed batches hold ``batch_size`` rows of
    up to ``seq_len`` tokens each, padded to the longest row.
    """
    padded = sum((padded_stats(b) for b in _chunks(examples, batch_size)), PaddingStats())
    rows = pack_examples(examples, seq_len, strategy=strategy)
    packed = sum((packed_stats(b) for b in _chunks(rows, batch_size)), PaddingStats())
    return padded, packed


def check_packable(model: Any) -> None:
    """Packed examples are kept apart by Transformers' own mask builder, from position ids; refuse
    models that would let them attend to each other instead."""
    if getattr(model.config, "alibi", False):
        raise RecipeRuntimeError(("data", "packing"), "this model uses ALiBi positions, which packing cannot separate; set packing: false")
    modeling = sys.modules.get(type(model).__module__)
    if not hasattr(modeling, "create_causal_mask"):
        raise RecipeRuntimeError(
            ("data", "packing"),
            f"{type(model).__name__} builds its own attention mask, so packed examples would see each other; set packing: false",
        )
