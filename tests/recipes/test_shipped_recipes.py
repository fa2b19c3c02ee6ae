"""Every shipped recipe validates, says how to run it, points editors at the schema, and survives --smoke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftrecipe.validation import validate_file
from tests.conftest import ROOT, run_cli

LIBRARIES_OWN_DEPRECATIONS = (
    # Transformers' Whisper `generate` hands its suppressed tokens to the generic one beside its config
    "Passing `generation_config` together with generation-related arguments",
)
"""Deprecation lines in a run's libraries.log that a library's own call causes, not an argument ftrecipe passes."""

RECIPES = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "data" not in p.relative_to(ROOT / "recipes").parts)


def test_there_are_recipes():
    names = {p.relative_to(ROOT).as_posix() for p in RECIPES}
    assert {"recipes/llama2-7b-sql-qlora.yaml", "recipes/falcon-40b-qlora.yaml", "recipes/bert-tweet-sentiment.yaml",
            "recipes/demo/llama.yaml", "recipes/demo/falcon.yaml", "recipes/whisper-callcenter.yaml",
            "recipes/demo/whisper.yaml", "recipes/yolo-finetune.yaml", "recipes/demo/yolo.yaml",
            "recipes/sd-dreambooth-dog.yaml", "recipes/demo/stable-diffusion.yaml", "recipes/resnet50-cats-vs-dogs.yaml",
            "recipes/demo/image-classification.yaml", "recipes/fasterrcnn-resnet50-pets.yaml",
            "recipes/demo/object-detection.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_recipe_is_valid_and_self_describing(path: Path):
    result = validate_file(path)
    assert result.ok, [d.text() for d in result.diagnostics]
    first, second = path.read_text().splitlines()[:2]
    assert first == f"# ftrecipe run {path.relative_to(ROOT).as_posix()}"
    assert second.startswith("# yaml-language-server: $schema=")
    schema = (path.parent / second.split("$schema=", 1)[1]).resolve()
    assert schema == (ROOT / "schemas" / "recipe.schema.json").resolve()


@pytest.mark.e2e
@pytest.mark.parametrize("path", [p for p in RECIPES if p.parent.name != "demo"], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_recipe_runs_as_written_with_smoke(path: Path, tmp_path: Path):
    """What the README promises on a fresh clone: each recipe, with the data that ships next to it, offline.
    (The demos run in full in the plugins' tests.)"""
    out = tmp_path / "smoke"
    result = run_cli("run", str(path), "--smoke", "--quiet", "--output", str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["smoke"] and (out / "model" / "README.md").is_file()
    assert summary["data"]["train_examples"] > 0 and summary["eval_after"]
    assert not own_warnings(out / "libraries.log")


def own_warnings(log: Path) -> list[str]:
    """What the libraries said about ftrecipe's own calls: a warning raised at a line of ftrecipe or a built-in
    plugin (`py.warnings: /path/to/ftrecipe/...`), or a deprecation of something a call of ours names (it
    becomes an error in the library's next major release; `bash .ci/run --latest` finds it here first)."""
    lines = log.read_text().splitlines() if log.is_file() else []
    return [line for line in lines
            if f"py.warnings: {ROOT}" in line
            or ("deprecated" in line and not any(known in line for known in LIBRARIES_OWN_DEPRECATIONS))]


@pytest.mark.parametrize("name", ["bert-tweet-sentiment", "whisper-callcenter"])
def test_a_base_model_that_is_not_here_says_how_to_get_it(name: str, tmp_path: Path):
    path = ROOT / "recipes" / f"{name}.yaml"
    result = run_cli("run", str(path), "--quiet", "--output", str(tmp_path / "run"), timeout=300)
    assert result.returncode == 2, result.stderr
    base = next(line for line in path.read_text().splitlines() if line.strip().startswith("base:"))
    line = path.read_text().splitlines().index(base) + 1
    column = base.index("base:") + len("base: ") + 1
    (message,) = [text for text in result.stderr.splitlines() if text.strip()]
    assert message.startswith(f"{path}:{line}:{column}: model.base: '{base.split()[1]}' is not a local directory and not in the Hugging Face cache")
    assert "hf download" in message and "--smoke" in message and "Traceback" not in result.stderr


@pytest.mark.parametrize("modality", ["causal-lm", "text-classification", "whisper", "yolo", "stable-diffusion",
                                      "image-classification", "object-detection"])
def test_every_built_in_starter_recipe_is_valid(tmp_path: Path, modality: str):
    """`ftrecipe init` writes what `ftrecipe validate` accepts, for every modality that ships."""
    target = tmp_path / f"{modality}.yaml"
    assert run_cli("init", modality, "--output", str(target)).returncode == 0
    result = validate_file(target)
    assert result.ok, [d.text() for d in result.diagnostics]
    assert result.recipe.model.modality == modality
