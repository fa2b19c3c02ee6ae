"""Bounded recipe parsing: a hostile file (an alias bomb, ``[[[[...`` thousands deep, megabytes of
text) gets a located problem in well under a second, never a hang, a memory blow-up or a traceback,
while ordinary anchors and aliases keep working as before."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from ftrecipe.testing import OFFLINE_ENV, foreign_lines
from ftrecipe.validation import validate_file, validate_text
from ftrecipe.yamlio import MAX_DEPTH, MAX_RECIPE_BYTES, MAX_VALUES, Mark, load_yaml

RECIPE = """\
name: bomb
model: {modality: causal-lm, base: llama, init: scratch}
data: {format: synthetic}
training: {max_steps: 1}
"""
"""A valid minimal recipe (the built-in text plugin's causal-lm modality): four lines."""

BOMB = RECIPE + "bomb:\n" + '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"  a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)
)
"""Billion laughs: nine levels of nine aliases each, 9**9 "lol"s once expanded, in 14 lines. Each list
is itself a value, so a0 holds 10 values, a1 91, a2 820, a3 7,381, a4 66,430: with the recipe's keys and
the definitions so far about 75,000 values, and the first *a4 in a5 (line 11, column 12) tips it over."""

MEMORY_LIMIT = 3 << 29  # 1.5 GiB: a regression fails with a MemoryError instead of eating the machine


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def validate_cli(path: Path) -> subprocess.CompletedProcess[str]:
    """`python -m ftrecipe validate PATH` with bounded memory and time (validate never imports torch)."""
    return subprocess.run(
        [sys.executable, "-m", "ftrecipe", "validate", str(path)], capture_output=True, text=True,
        env={**os.environ, **OFFLINE_ENV}, preexec_fn=_limit_memory, timeout=30,
    )


def first_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not foreign_lines(result.stderr), result.stderr[-3000:]
    return (result.stdout + result.stderr).splitlines()[0]


def count_values(data: Any) -> int:
    """What the loader built, counted as its limit counts: every key, scalar and collection once."""
    if isinstance(data, dict):
        return 1 + sum(1 + count_values(value) for value in data.values())
    if isinstance(data, list):
        return 1 + sum(count_values(value) for value in data)
    return 1


def depth(data: Any) -> int:
    children = data.values() if isinstance(data, dict) else data if isinstance(data, list) else None
    return 0 if children is None else 1 + max((depth(child) for child in children), default=0)


def test_the_bomb_is_14_lines_and_a_valid_recipe_without_it(tmp_path):
    assert len(BOMB.splitlines()) == 14
    assert validate_text(RECIPE, source="ok.yaml").ok


def test_alias_bomb_is_refused_at_the_alias_that_tips_it_over(tmp_path):
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(BOMB)
    result = validate_cli(recipe)
    assert result.returncode == 2, result.stderr[-3000:]
    assert first_line(result) == (
        f"{recipe}:10:16: YAML aliases expand to more than {MAX_VALUES:,} values (an alias bomb?): a recipe is a few hundred"
    )


@pytest.mark.parametrize(
    "text, where, message",
    [
        ("[" * 100_000, "1:65", f"YAML nested deeper than {MAX_DEPTH} levels: a recipe nests a few"),
        ("- " * 100_000 + "x\n", "1:129", f"YAML nested deeper than {MAX_DEPTH} levels: a recipe nests a few"),
        (RECIPE + "pad: [" + ",".join(["1"] * (1 << 20)) + "]\n", "1:1", "the file is {size:,} bytes; a recipe is at most 1 MiB"),
        (RECIPE + "big: " + "x" * (2 << 20) + "\n", "1:1", "the file is {size:,} bytes; a recipe is at most 1 MiB"),
    ],
    ids=["flow-100000-deep", "block-100000-deep", "2MiB-file", "2MiB-scalar"],
)
def test_hostile_files_get_a_located_exit_2(tmp_path, text, where, message):
    recipe = tmp_path / "hostile.yaml"
    recipe.write_text(text)
    result = validate_cli(recipe)
    assert result.returncode == 2, result.stderr[-3000:]
    assert first_line(result) == f"{recipe}:{where}: {message.format(size=len(text.encode()))}"


@pytest.mark.parametrize(
    "text, mark, message",
    [
        ("[" * 100_000, (1, 65), "nested deeper than"),
        ("x: " + "y" * (2 << 20), (1, 1), "a recipe is at most 1 MiB"),
        ("x: " + "é" * (MAX_RECIPE_BYTES // 2 + 1), (1, 1), "bytes; a recipe is at most 1 MiB"),  # few chars, many bytes
        ("a: &a [1, *a]\n", (1, 11), "refers to a collection that holds it (a cycle)"),
        (
            "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 1000)),  # each level one deeper
            (MAX_DEPTH, 12),
            "expands to data nested deeper",
        ),
        ("x: [" + ",".join(["1"] * (MAX_VALUES + 1)) + "]\n", (1, 2 * MAX_VALUES - 1), "the YAML holds more than"),
    ],
    ids=["deep", "2MiB", "multibyte", "cycle", "deep-alias-chain", "too-many-plain-values"],
)
def test_load_yaml_locates_each_limit(text, mark, message):
    loaded = load_yaml(text)
    assert loaded.data is None and len(loaded.problems) == 1
    problem = loaded.problems[0]
    assert message in problem.message and (problem.mark.line, problem.mark.col) == mark, problem


def test_an_oversized_device_is_read_no_further_than_the_limit():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    result = validate_file("/dev/zero")  # st_size 0, endless content: the read must stop at the bound
    assert not result.ok and [(d.line, d.col, d.message) for d in result.diagnostics] == [
        (1, 1, "the file is over 1 MiB; a recipe is at most 1 MiB")
    ]


ORDINARY = RECIPE.replace("data: {format: synthetic}", "data: {format: synthetic, train_size: &n 64, eval_size: *n}") + """\
shared: &shared {a: 1, b: [x, y]}
first: *shared
second: *shared
"""


def test_ordinary_anchors_and_aliases_work_as_before():
    loaded = load_yaml(ORDINARY)
    assert loaded.problems == []
    assert loaded.data == YAML(typ="safe", pure=True).load(ORDINARY)
    assert loaded.data["data"]["eval_size"] == loaded.data["data"]["train_size"] == 64
    assert loaded.data["first"] == loaded.data["second"] == {"a": 1, "b": ["x", "y"]}
    # Keys are where they are written; an aliased value is located at the anchored value it stands for.
    line = ORDINARY.splitlines()[2]
    assert loaded.keys[("data", "eval_size")] == Mark(3, line.index("eval_size") + 1)
    assert loaded.values[("data", "eval_size")] == loaded.values[("data", "train_size")] == Mark(3, line.index("&n") + 1)
    assert loaded.keys[("second",)] == Mark(7, 1)
    y = Mark(5, ORDINARY.splitlines()[4].index("y") + 1)
    assert loaded.values[("second", "b", 1)] == loaded.values[("shared", "b", 1)] == y

    result = validate_text(ORDINARY.split("shared:")[0], source="ordinary.yaml")
    assert result.ok, [d.text() for d in result.diagnostics]
    assert result.recipe.data.eval_size == result.recipe.data.train_size == 64


# -- properties ---------------------------------------------------------------------------------------

@st.composite
def alias_chains(draw) -> str:
    """Anchors defined on aliases of the level below (flow or block, lists or mappings, sometimes
    wrapped in extra levels): fan-out ** levels values, from tiny to astronomically many."""
    levels, fan = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    wrap = draw(st.integers(0, 3))
    lines = [f"a0: &a0 {draw(st.sampled_from(['x', '[x, y]', '{k: v}', '[[x], {k: [y]}]']))}"]
    for i in range(1, levels + 1):
        style = draw(st.sampled_from(["seq", "map", "block"]))
        if style == "seq":
            body = "[" * wrap + ", ".join([f"*a{i - 1}"] * fan) + "]" * wrap
            lines.append(f"a{i}: &a{i} [{body}]")
        elif style == "map":
            lines.append(f"a{i}: &a{i} {{{', '.join(f'k{j}: *a{i - 1}' for j in range(fan))}}}")
        else:
            lines.append(f"a{i}: &a{i}")
            lines += [f"  - *a{i - 1}"] * fan
    return "\n".join(lines) + "\n"


def deep_nesting() -> st.SearchStrategy[str]:
    """Flow brackets, block sequences and indented mappings, around the depth limit and far past it."""
    n = st.integers(1, 3 * MAX_DEPTH) | st.sampled_from([MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 5000])
    return st.one_of(
        st.builds(lambda depth, closed: "[" * depth + "]" * closed, n, n),
        st.builds(lambda depth, closed: "{a: " * depth + "}" * closed, n, n),
        st.builds(lambda depth: "- " * depth + "x\n", n),
        st.builds(lambda depth: "".join(" " * i + "k:\n" for i in range(min(depth, 300))), n),
    )


huge_scalars = st.sampled_from([10, 50_000, MAX_RECIPE_BYTES + 1]).map(lambda size: "x: " + "y" * size + "\n") | st.just(
    "x: " + "é" * (MAX_RECIPE_BYTES // 2 + 1)
)
junk = st.text(alphabet="[]{}&*:,-!?|>'\"#\n ab01", max_size=200) | st.text(max_size=100)
pieces = st.one_of(alias_chains(), deep_nesting(), huge_scalars, junk)
yaml_texts = pieces | st.lists(pieces, min_size=2, max_size=3).map("\n".join)


@pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")  # joined chains reuse anchor names
@settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(yaml_texts)
def test_any_text_loads_within_the_bounds_or_gets_a_located_problem(text):
    """Anchors, alias chains, deep nesting, huge scalars, junk: load_yaml returns (never raises), each
    problem inside the text; without problems, what it built is within MAX_VALUES and MAX_DEPTH."""
    loaded = load_yaml(text)
    lines = max(len(text.splitlines()), 1)
    for problem in loaded.problems:
        assert problem.message and 1 <= problem.mark.line <= lines + 1 and problem.mark.col >= 1, problem
    if not loaded.problems:
        assert count_values(loaded.data) <= MAX_VALUES
        assert depth(loaded.data) <= MAX_DEPTH


@pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")
@settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.one_of(alias_chains(), deep_nesting(), junk), st.sampled_from(["data", "bomb", "model"]))
def test_validate_text_gives_a_verdict_for_any_text_under_any_key(text, key):
    """The same inputs inside a recipe (under a known key, or an unknown one): a verdict, never an
    exception, every diagnostic located inside the file."""
    indented = "".join(f"  {line}\n" for line in text.splitlines())
    recipe = RECIPE.replace(f"{key}: ", f"{key}_was: ") + f"{key}:\n{indented}"
    result = validate_text(recipe, source="fuzz.yaml")
    lines = len(recipe.splitlines())
    for diagnostic in result.diagnostics:
        assert diagnostic.message
        assert diagnostic.line is None or (1 <= diagnostic.line <= lines + 1 and diagnostic.col >= 1), diagnostic
