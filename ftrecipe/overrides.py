"""``--set dotted.key=value`` overrides, applied to the raw recipe before validation.

Values are parsed as YAML scalars (``3`` is an int, ``[a, b]`` a list) and then typed by the schema
like any value in the file, so a bad override gets the same message, reported against the argument.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftrecipe.yamlio import Path, parse_scalar

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Override:
    argument: str
    path: Path
    value: Any


class OverrideError(ValueError):
    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


def parse_override(argument: str) -> Override:
    key, sep, raw = argument.partition("=")
    if not sep or not key.strip():
        raise OverrideError(argument, "expected dotted.key=value")
    path: list[str | int] = []
    for part in key.strip().split("."):
        if part.isdigit():
            path.append(int(part))
        elif _KEY.match(part):
            path.append(part)
        else:
            raise OverrideError(argument, f"'{part}' is not a valid key in '{key}'")
    return Override(argument, tuple(path), parse_scalar(raw))


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override]) -> None:
    """Set each override's value in ``data`` in place, creating missing mappings on the way."""
    for override in overrides:
        node: Any = data
        for depth, part in enumerate(override.path[:-1]):
            nxt = override.path[depth + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise OverrideError(override.argument, f"no list item {part} at '{_show(override.path[:depth])}'")
                node = node[part]
                continue
            if not isinstance(node, dict):
                raise OverrideError(override.argument, f"'{_show(override.path[:depth])}' is not a mapping")
            if node.get(part) is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        last = override.path[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last > len(node):
                raise OverrideError(override.argument, f"no list item {last} at '{_show(override.path[:-1])}'")
            if last == len(node):
                node.append(override.value)
            else:
                node[last] = override.value
        elif isinstance(node, dict):
            node[last] = override.value
        else:
            raise OverrideError(override.argument, f"'{_show(override.path[:-1])}' is not a mapping")


def _show(path: Path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"
