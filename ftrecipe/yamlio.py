"""Safe YAML loading that remembers where every key and value is.

Recipes are data: the file is composed into YAML nodes and turned into plain dicts, lists and
scalars by this module, so no tag can construct a Python object. Along the way it records the
line and column of every key and value (for located errors) and reports duplicate keys, non-string
keys and disallowed tags, all at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

_STANDARD = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {"str", "int", "float", "bool", "null", "map", "seq", "timestamp"}


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


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


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


def load_yaml(text: str) -> LoadedYaml:
    """Parse one YAML document into plain data with positions; never raises for bad input."""
    yaml = YAML(typ="safe", pure=True)
    loaded = LoadedYaml(data=None)
    try:
        nodes = list(yaml.compose_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        position = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = " ".join(part for part in (error.context, error.problem) if part) or "invalid YAML"
        loaded.problems.append(YamlProblem(position, (), f"YAML syntax error: {problem}"))
        return loaded
    except YAMLError as error:
        loaded.problems.append(YamlProblem(Mark(1, 1), (), f"YAML error: {error}"))
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
    loaded.data = _Builder(yaml, loaded).build(root, ())
    return loaded


def parse_scalar(text: str) -> Any:
    """Type a ``--set`` value the way YAML would (``3`` is an int, ``[a, b]`` a list)."""
    loaded = load_yaml(f"v: {text}") if text.strip() else LoadedYaml(data={"v": ""})
    if loaded.problems or not isinstance(loaded.data, dict):
        return text
    return loaded.data["v"]
