"""Raw rows: reading record files and resolving mapped columns.

Recipes name columns by *canonical* names (``prompt``, ``completion``, ``instruction`` ...)
and map them to whatever the data file calls them (``columns: {prompt: question}``).
This module owns that lookup and the error raised when a row does not fit, so that the
message always says which row, which column, and which columns the row really has.
Pure Python: no torch or transformers import.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["FormatError", "column_name", "get_column", "load_records", "iter_records"]


class FormatError(ValueError):
    """A row cannot be turned into a training example.

    Attributes:
        row_index: position of the offending row in its source (``None`` when unknown).
        message: the reason, without the row prefix.
    """

    def __init__(self, row_index: int | None, message: str) -> None:
        self.row_index = row_index
        self.message = message
        where = f"row {row_index}" if row_index is not None else "row"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:  # keep picklable across DataLoader workers
        return (type(self), (self.row_index, self.message))


def column_name(canonical: str, columns: Mapping[str, str] | None) -> str:
    """Return the file's column name for a canonical name (identity when unmapped)."""
    if columns and canonical in columns:
        return columns[canonical]
    return canonical


def _available(row: Mapping[str, Any]) -> str:
    return ", ".join(repr(k) for k in row.keys()) or "(none)"


def get_column(
    row: Mapping[str, Any],
    canonical: str,
    columns: Mapping[str, str] | None,
    *,
    row_index: int | None = None,
    required: bool = True,
    default: Any = None,
) -> Any:
    """Look up a canonical column in ``row`` through the column mapping.

    A required column that is absent or ``None`` raises :class:`FormatError` naming the
    canonical name, the mapped file column and the columns the row has. An optional one
    returns ``default`` instead.
    """
    if not isinstance(row, Mapping):
        raise FormatError(row_index, f"expected a mapping of column -> value, got {type(row).__name__}")
    name = column_name(canonical, columns)
    value = row.get(name)
    if value is None:
        if not required:
            return default
        mapped = f" (mapped to {name!r})" if name != canonical else ""
        state = "is null" if name in row else "is missing"
        raise FormatError(
            row_index,
            f"column {canonical!r}{mapped} {state}; available columns: {_available(row)}",
        )
    return value


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield rows of a ``.jsonl``/``.json``/``.csv``/``.tsv`` file as dicts.

    ``.json`` may hold a list of objects or ``{"data": [...]}``. CSV cells stay strings.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        with p.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{p}:{lineno}: invalid JSON: {exc.msg}") from exc
                if not isinstance(obj, dict):
                    raise ValueError(f"{p}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield obj
    elif suffix == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(f"{p}: expected a list of objects (or {{'data': [...]}})")
        yield from data
    elif suffix in {".csv", ".tsv"}:
        with p.open(encoding="utf-8", newline="") as fh:
            yield from csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise ValueError(f"{p}: unsupported record file type {suffix!r} (use .jsonl, .json, .csv or .tsv)")


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """Read all rows of a record file (see :func:`iter_records`)."""
    return list(iter_records(path))
