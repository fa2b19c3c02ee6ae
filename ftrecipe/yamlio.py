"""Safe YAML loading that remembers where every key and value is.

Recipes are data: the file is composed into YAML nodes and turned into plain dicts, lists and
scalars by this module, so no tag can construct a Python object. Along the way it records the
line and column of every key and value (for located errors) and reports duplicate keys, non-string
keys and disallowed tags, all at once. Before composing, one streaming pass over the parser's events
bounds the size, the nesting depth and the alias expansion, so no file (a "billion laughs" alias bomb,
``[[[[...`` thousands deep) can hang or exhaust the process: it gets a located problem instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import ReusedAnchorWarning
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    ScalarEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

_STANDARD = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {"str", "int", "float", "bool", "null", "map", "seq", "timestamp"}

MAX_RECIPE_BYTES = 1 << 20
"""A recipe is a few KB: a bigger text is a mistake (or an attack), refused before it is parsed."""
MAX_DEPTH = 64
"""Recipes nest a few levels; the bound keeps ruamel's recursive composer and the builder far from
Python's recursion limit (``[[[[...`` would otherwise end in a RecursionError)."""
MAX_VALUES = 20_000
"""A recipe holds a few hundred values; aliases can multiply what the builder produces (a "billion
laughs" bomb of 14 lines expands to a billion), so the count after alias expansion is bounded."""


@dataclass(frozen=True)
class Mark:
    """A 1-based position in a file."""

    line: int
    col: int


@dataclass
class YamlProblem:
    """Something wrong with the YAML itself, at a position."""

    mark: Mark
    path: Path
    message: str


@dataclass
class LoadedYaml:
    """The document's data plus the position of every key (``keys``) and value (``values``)."""

    data: Any
    keys: dict[Path, Mark] = field(default_factory=dict)
    values: dict[Path, Mark] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def locate(self, path: Path, *, prefer_key: bool = False) -> Mark | None:
        """The best position for ``path``: its value (or key), else its nearest located parent."""
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            first, second = (self.keys, self.values) if prefer_key or end < len(path) else (self.values, self.keys)
            mark = first.get(prefix) or second.get(prefix)
            if mark is not None:
                return mark
        return None


def _mark(item: Node | Event) -> Mark:
    """Where a composed node or a parser event starts (1-based)."""
    mark = item.start_mark
    return Mark(mark.line + 1, mark.column + 1) if mark is not None else Mark(1, 1)


def _tag_name(tag: Any) -> str:
    return str(getattr(tag, "value", tag))


class _Builder:
    """Walks composed nodes into plain Python data, recording marks and problems."""

    def __init__(self, yaml: YAML, loaded: LoadedYaml) -> None:
        self.constructor = yaml.constructor
        self.loaded = loaded

    def build(self, node: Node, path: Path) -> Any:
        tag = _tag_name(node.tag)
        self.loaded.values.setdefault(path, _mark(node))
        if not tag.startswith(_STANDARD) or tag[len(_STANDARD) :] not in _ALLOWED_TAGS:
            shown = "!!" + tag[len(_STANDARD) :] if tag.startswith(_STANDARD) else tag
            self.loaded.problems.append(
                YamlProblem(_mark(node), path, f"YAML tag {shown} is not allowed: recipes are data, not code")
            )
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        if tag.endswith(":timestamp"):
            return node.value  # dates are not meaningful in recipes; keep the text
        return self.constructor.construct_object(node, deep=True)

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if _tag_name(key_node.tag) == _STANDARD + "merge":
                self.loaded.problems.append(
                    YamlProblem(_mark(key_node), path, "YAML merge keys (<<) are not supported; write the keys out")
                )
                continue
            if not isinstance(key_node, ScalarNode):
                self.loaded.problems.append(YamlProblem(_mark(key_node), path, "keys must be plain strings"))
                continue
            key = str(key_node.value)
            if key in first_seen:
                self.loaded.problems.append(
                    YamlProblem(
                        _mark(key_node),
                        path + (key,),
                        f"duplicate key '{key}' (first defined at line {first_seen[key].line})",
                    )
                )
                continue
            first_seen[key] = _mark(key_node)
            self.loaded.keys[path + (key,)] = _mark(key_node)
            result[key] = self.build(value_node, path + (key,))
        return result


class _Open:
    """A collection whose end event has not come yet: its values so far and its height (levels)."""

    __slots__ = ("anchor", "values", "height")

    def __init__(self, anchor: str | None) -> None:
        self.anchor = anchor
        self.values = 1  # the collection itself
        self.height = 1

    def hold(self, values: int, height: int) -> None:
        """Take in a child of ``values`` values nested ``height`` levels (0 for a scalar)."""
        self.values += values
        self.height = max(self.height, height + 1)


def _size_problem(text: str) -> YamlProblem | None:
    """Too big a text, measured before anything parses it (characters first: they never exceed bytes)."""
    if len(text) > MAX_RECIPE_BYTES:
        return YamlProblem(Mark(1, 1), (), f"the text is {len(text):,} characters; a recipe is at most 1 MiB")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RECIPE_BYTES:
        return YamlProblem(Mark(1, 1), (), f"the text is {size:,} bytes; a recipe is at most 1 MiB")
    return None


def _bounds_problem(events: Iterable[Event]) -> YamlProblem | None:
    """The first place where the events nest deeper than MAX_DEPTH or expand past MAX_VALUES values.

    Counts what the builder would produce without composing anything: every scalar (keys included) and
    every collection is one value, and an alias is as many values (and levels) as its anchor held, so
    the work is linear in the text however the aliases multiply. Resolves anchors as ruamel's composer
    does (the latest definition, reset per document); an alias to a collection still open is a cycle.
    Syntax errors propagate as the parser raises them.
    """
    total = 0
    stack: list[_Open] = []
    anchors: dict[str, _Open | tuple[int, int]] = {}
    for event in events:
        if isinstance(event, CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                return YamlProblem(_mark(event), (), f"YAML nested deeper than {MAX_DEPTH} levels: a recipe nests a few")
            opened = _Open(event.anchor)
            if event.anchor is not None:
                anchors[event.anchor] = opened
            stack.append(opened)
            added = 1  # its contents are counted as they come; the parent takes its total at the end
        elif isinstance(event, CollectionEndEvent):
            closed = stack.pop()
            if closed.anchor is not None and anchors.get(closed.anchor) is closed:
                anchors[closed.anchor] = (closed.values, closed.height)
            if stack:
                stack[-1].hold(closed.values, closed.height)
            continue
        elif isinstance(event, ScalarEvent):
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
            added = 1
            if stack:
                stack[-1].hold(1, 0)
        elif isinstance(event, AliasEvent):
            target = anchors.get(event.anchor, (1, 0))  # an undefined alias is the composer's to report
            if isinstance(target, _Open):
                message = f"YAML alias *{event.anchor} refers to a collection that holds it (a cycle)"
                return YamlProblem(_mark(event), (), message)
            added, height = target
            if len(stack) + height > MAX_DEPTH:
                message = f"YAML alias *{event.anchor} expands to data nested deeper than {MAX_DEPTH} levels"
                return YamlProblem(_mark(event), (), message)
            if stack:
                stack[-1].hold(added, height)
        elif isinstance(event, DocumentStartEvent):
            anchors.clear()  # as the composer does: anchors belong to one document
            continue
        else:
            continue
        total += added
        if total > MAX_VALUES:
            message = (
                f"YAML aliases expand to more than {MAX_VALUES:,} values (an alias bomb?): a recipe is a few hundred"
                if isinstance(event, AliasEvent)
                else f"the YAML holds more than {MAX_VALUES:,} values: a recipe is a few hundred"
            )
            return YamlProblem(_mark(event), (), message)
    return None


def _syntax_problem(error: YAMLError) -> YamlProblem:
    """A parser or composer error, located where ruamel found it."""
    if isinstance(error, MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        position = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = " ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
        return YamlProblem(position, (), f"YAML syntax error: {problem}")
    return YamlProblem(Mark(1, 1), (), f"YAML error: {error}")


_TOO_DEEP = f"YAML nested too deeply to read (a recipe nests a few levels; at most {MAX_DEPTH})"


def _checked_nodes(yaml: YAML, text: str) -> list[Node] | YamlProblem:
    """The composed documents, or the first problem: too big, too deep, too many values, bad syntax."""
    problem = _size_problem(text)
    if problem is not None:
        return problem
    events = yaml.parse(text)
    try:
        with warnings.catch_warnings():  # a reused anchor name is legal (the latest wins): not for the console
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            problem = _bounds_problem(events)
            if problem is not None:
                return problem
            return list(yaml.compose_all(text))
    except YAMLError as error:
        return _syntax_problem(error)
    except RecursionError:  # the bounds above should make this unreachable; never a traceback regardless
        return YamlProblem(Mark(1, 1), (), _TOO_DEEP)
    finally:
        events.close()


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document into plain data with positions; never raises for bad input."""
    yaml = YAML(typ="safe", pure=True)
    loaded = LoadedYaml(data=None)
    nodes = _checked_nodes(yaml, text)
    if isinstance(nodes, YamlProblem):
        loaded.problems.append(nodes)
        return loaded
    nodes = [node for node in nodes if node is not None]
    if not nodes:
        loaded.problems.append(YamlProblem(Mark(1, 1), (), "the file is empty: a recipe is a YAML mapping"))
        return loaded
    if len(nodes) > 1:
        loaded.problems.append(
            YamlProblem(_mark(nodes[1]), (), "the file holds several YAML documents; a recipe is one")
        )
    root = nodes[0]
    if not isinstance(root, MappingNode):
        kind = "a list" if isinstance(root, SequenceNode) else "a single value"
        loaded.problems.append(YamlProblem(_mark(root), (), f"a recipe must be a YAML mapping, not {kind}"))
        return loaded
    try:
        loaded.data = _Builder(yaml, loaded).build(root, ())
    except RecursionError:  # as in _checked_nodes: unreachable within the bounds, a located problem if not
        loaded.data = None
        loaded.problems.append(YamlProblem(_mark(root), (), _TOO_DEEP))
    return loaded


def parse_scalar(text: str) -> Any:
    """Type a ``--set`` value the way YAML would (``3`` is an int, ``[a, b]`` a list)."""
    loaded = load_yaml(f"v: {text}") if text.strip() else LoadedYaml(data={"v": ""})
    if loaded.problems or not isinstance(loaded.data, dict):
        return text
    return loaded.data["v"]
