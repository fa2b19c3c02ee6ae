"""Properties of validation under mangled input: a verdict, never an exception; every error located
inside the file; an accepted recipe complete and stable under re-validation."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from ftrecipe.validation import resolved_data, validate_data, validate_text
from tests.conftest import FIXTURES

BASE = YAML(typ="safe").load((FIXTURES / "toy.yaml").read_text())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True), st.text(max_size=12),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def paths(node: Any, prefix=()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, prefix + (i,))
    return found


@st.composite
def mutated(draw):
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        all_paths = [p for p in paths(data) if p]
        if not all_paths:
            break
        path = draw(st.sampled_from(all_paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "rename", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(scalars)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = parent.pop(path[-1])
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(scalars)
    return data


def located_within(diagnostic, lines: int) -> bool:
    """A problem points into the file (1-based line and column) or at the argument that caused it."""
    if diagnostic.line is None:
        return diagnostic.source.startswith("--set") or diagnostic.path in ("", "model") or bool(diagnostic.path)
    return 1 <= diagnostic.line <= max(lines, 1) and diagnostic.col >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_recipes_get_a_verdict_never_an_exception(example_registry, data):
    """However a valid recipe is mangled: validation returns (never raises); a rejected recipe gets at
    least one error, each with a message, a dotted key and a position inside the file; an accepted one
    is complete (every default resolved) and validates again to the very same recipe."""
    text = YAML_DUMP(data)
    result = validate_text(text, source="fuzz.yaml", registry=example_registry)
    lines = len(text.splitlines())
    if result.ok:
        recipe = result.recipe
        assert recipe.name and recipe.output.dir and recipe.evaluation.metrics is not None
        again = validate_data(resolved_data(recipe, example_registry), source="fuzz.yaml", registry=example_registry)
        assert again.ok and again.recipe == recipe
    else:
        errors = [d for d in result.diagnostics if d.severity == "error"]
        assert errors
        for diagnostic in errors:
            assert diagnostic.message and located_within(diagnostic, lines), diagnostic


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gets_a_located_verdict(example_registry, text):
    result = validate_text(text, source="fuzz.yaml", registry=example_registry)
    assert not result.ok or text.strip()  # an empty file is never a recipe
    for diagnostic in result.diagnostics:
        assert diagnostic.message and located_within(diagnostic, len(text.splitlines()))


def YAML_DUMP(data: Any) -> str:  # noqa: N802 - reads like the function it wraps
    import io

    from ruamel.yaml import YAML as _YAML

    buffer = io.StringIO()
    _YAML(typ="safe", pure=True).dump(data, buffer)
    return buffer.getvalue()
