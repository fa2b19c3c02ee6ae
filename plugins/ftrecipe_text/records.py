"""Raw rows: resolving mapped columns.

Recipes name columns by *canonical* names (``prompt``, ``completion``, ``instruction`` ...)
and map them to whatever the data file calls them (``columns: {prompt: question}``).
This module owns that lookup and the error raised when a row does not fit, so that the
message always says which row, which column, and which columns the row really has.
Pure Python: no torch or transformers import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["FormatError", "column_name", "get_column"]


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
