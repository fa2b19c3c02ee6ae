"""What dataset-format readers return, the row files they share, and the seeding that makes
augmentation resumable.

Readers are torch-free: they return rows (dicts) in the canonical columns of the modality they
serve. A training dataset that sets the class attribute ``epoch_aware = True`` receives each index as an
:class:`EpochIndex`, an ``int`` that also knows its epoch, so it can derive a per-example random
generator with :func:`example_rng` that is the same whether the run was interrupted or not, and
whichever worker process loads the example (augmentation needs this; others get plain ints).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
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


ROW_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")


class RowFileError(ValueError):
    """A row file that cannot be read, or one bad line in it: ``path:line: message``."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def iter_rows(path: Path, on_bad_line: Callable[[RowFileError], None] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from a JSON Lines, JSON (a list, or ``{"data": [...]}``), CSV or TSV file.

    One reader for every plugin, so that "line 7 of train.jsonl is not JSON" reads the same
    everywhere. A bad JSON Lines line raises :class:`RowFileError`, or with ``on_bad_line`` is
    handed to it and skipped (a reader's ``data.on_error: skip``). CSV cells stay strings; a byte
    order mark (spreadsheet exports) is ignored.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    problem = None if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}"
                except json.JSONDecodeError as error:
                    problem = f"invalid JSON: {error.msg}"
                if problem is None:
                    yield number, row
                elif on_bad_line is None:
                    raise RowFileError(path, number, problem)
                else:
                    on_bad_line(RowFileError(path, number, problem))
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise RowFileError(path, error.lineno, f"invalid JSON: {error.msg}") from error
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise RowFileError(path, None, 'expected a list of objects (or {"data": [...]})')
        yield from enumerate(data, 1)  # positions, not lines: JSON has no line per row
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None:
                raise RowFileError(path, None, "empty file (no header line)")
            for row in reader:
                yield reader.line_num, row
    else:
        raise RowFileError(path, None, f"unsupported file type {suffix!r}; use one of {', '.join(ROW_FILE_SUFFIXES)}")
