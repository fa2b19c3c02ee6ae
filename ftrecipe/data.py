"""What dataset-format readers return, the chores every reader shares, and the seeding that makes
augmentation resumable.

Readers are torch-free: they return rows (dicts) in the canonical columns of the modality they
serve, as :class:`DatasetSplits` with a typed :class:`DataReport`. The chores live here once so that
every format behaves alike:

- :func:`source_paths` resolves ``data.train`` / ``data.eval`` against the recipe's folder and
  blames the exact recipe key (``data.train[1]``) for a path that does not exist;
  :func:`require_source` for a format that needs one;
- :func:`read_rows` reads JSON Lines, JSON, CSV, TSV and Parquet with located bad lines, skipped
  into the report or fatal per ``data.on_error``;
- :func:`make_splits` picks the examples in one documented order: (1) without an ``eval`` source,
  ``eval_fraction`` of *all* training rows is held out (seeded), so the evaluation set does not
  change with ``limit``; (2) ``data.limit`` keeps the first N training rows; (3) ``--smoke`` keeps
  :data:`SMOKE_TRAIN_EXAMPLES` and :data:`SMOKE_EVAL_EXAMPLES`.

A training dataset that sets the class attribute ``epoch_aware = True`` receives each index as an
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

from ftrecipe.errors import RecipeRuntimeError

SMOKE_TRAIN_EXAMPLES = 16
"""Training examples a ``--smoke`` run keeps."""
SMOKE_EVAL_EXAMPLES = 8
"""Evaluation examples a ``--smoke`` run keeps."""
REPORTED_SKIPS = 50
"""How many skipped examples summary.json lists by name (all are counted)."""


@dataclass
class DataReport:
    """The data report: the counts the core reads, and the modality's own numbers in ``details``.

    The runner logs it, warns with ``warnings``, writes :meth:`as_dict` to summary.json (``data``)
    and puts ``train_examples`` on the model card.
    """

    train_examples: int = 0
    eval_examples: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    """Every example left out: where (``train.jsonl:7``, a file path, ``eval:3``) -> why."""
    warnings: list[str] = field(default_factory=list)
    """Shown before training (too little data, a suspicious distribution, ...)."""
    details: dict[str, Any] = field(default_factory=dict)
    """The modality's own numbers (hours of audio, padding, per-class counts, ...)."""

    def skip(self, where: str, why: str) -> None:
        """Record one example left out (``data.on_error: skip``)."""
        self.skipped[where] = why

    def as_dict(self) -> dict[str, Any]:
        """summary.json's ``data``: counts first, the first :data:`REPORTED_SKIPS` skipped by name."""
        out: dict[str, Any] = {"train_examples": self.train_examples, "eval_examples": self.eval_examples,
                               "skipped": len(self.skipped)}
        if self.skipped:
            out["skipped_examples"] = dict(list(self.skipped.items())[:REPORTED_SKIPS])
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return {**out, **self.details}

    def log_lines(self) -> list[str]:
        """One line per plain number, for the run log."""
        lines = [f"data train_examples: {self.train_examples}", f"data eval_examples: {self.eval_examples}"]
        if self.skipped:
            lines.append(f"data skipped: {len(self.skipped)} (listed in summary.json)")
        lines += [f"data {key}: {value}" for key, value in self.details.items() if not isinstance(value, (dict, list))]
        return lines


@dataclass
class DatasetSplits:
    """Rows for training and evaluation, the files they came from, and the data report."""

    train: Sequence[Mapping[str, Any]]
    eval: Sequence[Mapping[str, Any]] | None = None
    files: list[Path] = field(default_factory=list)
    """Every data file read, hashed into run.json."""
    report: DataReport = field(default_factory=DataReport)


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


def require_source(section: Any, key: str = "train") -> None:
    """A format that reads files needs ``data.<key>``: say so at that key."""
    if getattr(section, key) is None:
        raise RecipeRuntimeError(("data", key), f"format {section.format} needs a {key} source")


def source_paths(section: Any, key: str, base_dir: Path) -> list[tuple[Path, tuple[str | int, ...]]]:
    """Each path of ``data.<key>`` with the recipe key to blame for it (``data.train[1]``).

    A path that does not exist is a :class:`RecipeRuntimeError` at its own key.
    """
    sources = getattr(section, key)
    paths = resolve_sources(sources, base_dir)
    found = []
    for index, path in enumerate(paths):
        where: tuple[str | int, ...] = ("data", key, index) if isinstance(sources, list) else ("data", key)
        if not path.exists():
            raise RecipeRuntimeError(where, f"no such file or directory: {path}")
        found.append((path, where))
    return found


def select_examples(section: Any, train: Sequence[Any], eval_rows: Sequence[Any] | None, *, seed: int,
                    smoke: bool) -> tuple[list[Any], list[Any]]:
    """Hold-out, then ``limit``, then the smoke caps: the order the module docstring documents."""
    train = list(train)
    if eval_rows is None:
        train, held = split_holdout(train, section.eval_fraction, seed)
    else:
        held = list(eval_rows)
    if section.limit:
        train = train[: section.limit]
    if smoke:
        train, held = train[:SMOKE_TRAIN_EXAMPLES], held[:SMOKE_EVAL_EXAMPLES]
    return train, held


def make_splits(section: Any, train: Sequence[Any], eval_rows: Sequence[Any] | None, *, seed: int, smoke: bool,
                files: Sequence[Path] = (), report: DataReport | None = None) -> DatasetSplits:
    """:func:`select_examples`, counted into ``report``: what a reader returns."""
    train, held = select_examples(section, train, eval_rows, seed=seed, smoke=smoke)
    report = report or DataReport()
    report.train_examples, report.eval_examples = len(train), len(held)
    return DatasetSplits(train, held or None, list(files), report)


ROW_FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")


class RowFileError(ValueError):
    """A row file that cannot be read, or one bad line in it: ``path:line: message``."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


def iter_rows(path: Path, on_bad_line: Callable[[RowFileError], None] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from a JSON Lines, JSON (a list, or ``{"data": [...]}``), CSV, TSV or Parquet file.

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
    elif suffix == ".parquet":
        yield from enumerate(_parquet_rows(path), 1)  # row positions
    else:
        raise RowFileError(path, None, f"unsupported file type {suffix!r}; use one of {', '.join(ROW_FILE_SUFFIXES)}")


def _parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow
    import pyarrow.parquet

    try:
        return pyarrow.parquet.read_table(path).to_pylist()
    except (pyarrow.ArrowException, OSError) as error:
        raise RowFileError(path, None, f"not a readable Parquet file: {error}") from error


class Row(dict):
    """A row read from a file, which remembers where it came from (``row.where``: ``path:line``), so a
    problem found later (a missing column, an unknown label) can name the file and line."""

    where: str = ""

    def __init__(self, values: dict[str, Any], where: str) -> None:
        super().__init__(values)
        self.where = where

    def __reduce__(self) -> tuple:  # survive pickling into loader workers, with ``where``
        return (Row, (dict(self), self.where))


def where_of(row: Any, fallback: str) -> str:
    """``row.where`` for a :class:`Row`, else ``fallback`` (``train example 3``)."""
    return getattr(row, "where", "") or fallback


def read_rows(path: Path, key: tuple[str | int, ...], on_error: str, report: DataReport) -> list[Row]:
    """Every row of one row file, as :class:`Row` s. A bad line is skipped into ``report``
    (``data.on_error: skip``) or, like a file that cannot be read at all, is a
    :class:`RecipeRuntimeError` at ``key`` that names the file and line."""

    def skip(error: RowFileError) -> None:
        report.skip(f"{path}:{error.line}", error.message)

    try:
        return [Row(row, f"{path}:{line}") for line, row in iter_rows(path, None if on_error == "fail" else skip)]
    except RowFileError as error:
        message = f"{error.path}:{error.line}: corrupt record: {error.message}" if error.line else str(error)
        raise RecipeRuntimeError(key, message) from error
