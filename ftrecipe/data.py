"""What dataset-format readers return, and the seeding that makes augmentation resumable.

Readers are torch-free: they return rows (dicts) in the canonical columns of the modality they
serve. A training dataset that sets the class attribute ``epoch_aware = True`` receives each index as an
:class:`EpochIndex`, an ``int`` that also knows its epoch, so it can derive a per-example random
generator with :func:`example_rng` that is the same whether the run was interrupted or not, and
whichever worker process loads the example (augmentation needs this; others get plain ints).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DatasetSplits:
    """Rows for training and evaluation, the files they came from, and counts for the data report."""

    train: Sequence[Mapping[str, Any]]
    eval: Sequence[Mapping[str, Any]] | None = None
    files: list[Path] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


class EpochIndex(int):
    """A dataset index that carries the epoch it is drawn in (``index.epoch``)."""

    epoch: int

    def __new__(cls, index: int, epoch: int) -> EpochIndex:
        value = super().__new__(cls, index)
        value.epoch = epoch
        return value

    def __reduce__(self) -> tuple:  # survive pickling into DataLoader workers
        return (EpochIndex, (int(self), self.epoch))


def example_seed(base_seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one example in one epoch, independent of worker and resume."""
    digest = hashlib.blake2b(f"{base_seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def example_rng(base_seed: int, index: int):
    """A ``numpy.random.Generator`` for ``index`` (an :class:`EpochIndex` or a plain int: epoch 0)."""
    import numpy as np

    return np.random.default_rng(example_seed(base_seed, getattr(index, "epoch", 0), int(index)))


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """``sha256:<hex>`` of a file's content (recorded in run.json for each data file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def resolve_sources(sources: str | list[str] | None, base_dir: Path) -> list[Path]:
    """Recipe paths are relative to the recipe's folder; absolute paths stay as they are."""
    if sources is None:
        return []
    items = [sources] if isinstance(sources, str) else sources
    return [(base_dir / Path(item).expanduser()).resolve() for item in items]


def split_holdout(rows: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Hold out ``fraction`` of the rows (at least one when fraction > 0) with a seeded shuffle."""
    import random

    if fraction <= 0 or len(rows) < 2:
        return list(rows), []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, int(round(len(rows) * fraction)))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]
