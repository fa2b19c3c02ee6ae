"""The data a format's import is made of: rows from its keys to recipe keys, and its defaults.

A format module holds one :class:`Format`: a table of :class:`Row` (source key -> recipe key, with a
converter, or the reason it is not carried over) and of :class:`Default` (the source tool's default
where it differs from ftrecipe's, with a citation). :mod:`ftrecipe.importing.engine` runs the table;
:mod:`ftrecipe.importing.render` shows it (``ftrecipe import FORMAT --keys`` and the README).
Torch-free: ``ftrecipe import`` must start fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NO_EQUIVALENT = "no equivalent"
OTHER_MEANING = "equivalent under another meaning"
DEFAULT_DIFFERS = "a default that differs"
KINDS = (NO_EQUIVALENT, OTHER_MEANING, DEFAULT_DIFFERS)
"""Why a source key is not carried over (the issue's three reasons)."""


class NotCarried(Exception):
    """Raised by a converter when this value of a key cannot be carried over."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class Nothing:
    """A converter's answer when the value is read and means what ftrecipe does anyway (nothing to write)."""

    def __init__(self, why: str) -> None:
        self.why = why


class Append:
    """A converter's value for a list that several source keys build together (the trackers): its items are
    added to the list, each once, and the key joins the ``# from:`` comment, where :meth:`Context.set` would
    refuse a second, different value."""

    def __init__(self, *items: Any) -> None:
        self.items = items


class Context:
    """What a converter may look at and report besides its return value (filled by the engine)."""

    def __init__(self, source: Mapping[str, Any]) -> None:
        self.source = source
        self.values: dict[str, tuple[Any, str]] = {}
        """Recipe dotted key -> (value, the comment beside it: ``from: key: value``, or a default's)."""
        self.notes: list[tuple[str, str]] = []
        """(source key, what differs) for values carried with a caveat."""
        self.dropped: list[tuple[str, str, str]] = []
        """(source key, kind, reason) for keys not carried over."""
        self.kept: list[tuple[str, str]] = []
        """(source key, why) for keys read whose value is ftrecipe's behaviour already."""

    def set(self, recipe_key: str, value: Any, origin: str) -> None:
        """Write ``recipe_key``; ``origin`` is the ``key: value`` text of its ``# from:`` comment."""
        if isinstance(value, Append):
            before, comment = self.values.get(recipe_key, ([], ""))
            merged = list(before) + [item for item in value.items if item not in before]
            self.values[recipe_key] = (merged, f"{comment}; {origin}" if comment else f"from: {origin}")
            return
        if recipe_key in self.values:
            before, comment = self.values[recipe_key]
            if before != value:
                raise NotCarried(OTHER_MEANING, f"{recipe_key} is already {before!r} ({comment})")
            self.values[recipe_key] = (value, f"{comment}; {origin}")  # two keys that agree
            return
        self.values[recipe_key] = (value, f"from: {origin}")

    def note(self, source_key: str, text: str) -> None:
        self.notes.append((source_key, text))

    def drop(self, source_key: str, kind: str, reason: str) -> None:
        self.dropped.append((source_key, kind, reason))


Converter = Callable[[Any, Context], Any]
"""``(value, context) -> recipe value``; or a dict of recipe keys when the row has no single target;
or :class:`Nothing`; or raises :class:`NotCarried`. A value may be an :class:`Append` to a shared list."""


@dataclass(frozen=True)
class Row:
    """One source key: where it goes (``target`` with ``convert``), or why it does not (``kind``, ``how``)."""

    source: str
    target: str | None
    convert: Converter | None = None
    how: str = ""
    """For people: what the converter does, or why the key is not carried over."""
    kind: str | None = None
    """Set on keys never carried over (one of :data:`KINDS`)."""


@dataclass(frozen=True)
class Default:
    """The source tool's default for a key the config leaves out, written when it differs from ftrecipe's."""

    target: str
    value: Any
    source_key: str
    source_value: Any
    ftrecipe_value: Any
    citation: str
    """URL (with file and line, or the documentation section) that shows the source tool's default."""
    when: Callable[[Mapping[str, Any]], bool] = lambda source: True
    """Whether the default applies to this config (a LoRA default only with an adapter)."""
    note: str = ""


@dataclass(frozen=True)
class Format:
    """One importable tool: its rows, defaults and the recipe skeleton every import starts from."""

    name: str
    tool: str
    what: str
    """What kind of file it reads, for ``--help`` and the README."""
    rows: tuple[Row, ...]
    defaults: tuple[Default, ...]
    skeleton: dict[str, Any] = field(default_factory=dict)
    """Recipe keys every import of this format writes (the modality), with their reason."""
    finish: Callable[[Context], None] | None = None
    """Cross-key work after every row ran (e.g. a value two keys decide together)."""
    unknown: str = "not in ftrecipe's table for this tool: no known equivalent"

    def row(self, key: str) -> Row | None:
        return next((row for row in self.rows if row.source == key), None)


def same(value: Any, ctx: Context) -> Any:
    """The value as it is."""
    return value


def choice(table: Mapping[Any, Any], what: str) -> Converter:
    """A converter from a fixed set of source values to recipe values; any other value is not carried."""

    def convert(value: Any, ctx: Context) -> Any:
        key = value.lower() if isinstance(value, str) else value
        if key not in table:
            known = ", ".join(str(k) for k in table)
            raise NotCarried(NO_EQUIVALENT, f"no ftrecipe {what} matches {value!r} (carried: {known})")
        found = table[key]
        if isinstance(found, NotCarried):
            raise found
        return found

    convert.__doc__ = f"{what}: " + ", ".join(f"{k} -> {v}" for k, v in table.items() if not isinstance(v, NotCarried))
    return convert


def nothing_if(expected: Any, why: str, otherwise: tuple[str, str]) -> Converter:
    """The key is read: ``expected`` is ftrecipe's behaviour (nothing to write); any other value is not carried."""

    def convert(value: Any, ctx: Context) -> Any:
        if value == expected or (isinstance(expected, tuple) and value in expected):
            return Nothing(why)
        raise NotCarried(*otherwise)

    return convert
