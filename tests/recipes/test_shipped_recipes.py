"""Every shipped recipe validates, says how to run it, points editors at the schema, and survives --smoke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftrecipe.validation import validate_file
from tests.conftest import ROOT, SHARED, run_cli

RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def test_there_are_recipes():
    names = {p.relative_to(ROOT).as_posix() for p in RECIPES}
    assert {"recipes/llama2-7b-sql-qlora.yaml", "recipes/falcon-40b-qlora.yaml", "recipes/bert-tweet-sentiment.yaml",
            "recipes/demo/llama.yaml", "recipes/demo/falcon.yaml", "recipes/whisper-callcenter.yaml",
            "recipes/demo/whisper.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shipped_recipe_is_valid_and_self_describing(path: Path):
    result = validate_file(path)
    assert result.ok, [d.text() for d in result.diagnostics]
    first, second = path.read_text().splitlines()[:2]
    assert first == f"# ftrecipe run {path.relative_to(ROOT).as_posix()}"
    assert second.startswith("# yaml-language-server: $schema=")
    schema = (path.parent / second.split("$schema=", 1)[1]).resolve()
    assert schema == (ROOT / "schemas" / "recipe.schema.json").resolve()


def _data_overrides(path: Path, tmp: Path) -> list[str]:
    """Point recipes whose data is not in the repository at a few local examples."""
    name = path.stem
    if name == "falcon-40b-qlora":
        rows = [{"instruction": f"Add {i} and {i}.", "input": "", "output": str(2 * i)} for i in range(12)]
        (tmp / "i.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return ["--set", f"data.train={tmp / 'i.jsonl'}"]
    if name == "bert-tweet-sentiment":
        lines = ["tweet,sentiment"] + [f"{t} {i},{s}" for i in range(6) for t, s in
                                       (("love it", "positive"), ("meh", "neutral"), ("hate it", "negative"))]
        (tmp / "t.csv").write_text("\n".join(lines) + "\n")
        return ["--set", f"data.train={tmp / 't.csv'}", "--set", f"data.eval={tmp / 't.csv'}"]
    if name == "whisper-callcenter":
        if not (SHARED / "fsdd").is_dir():
            pytest.skip("../shared/datasets/fsdd is absent")
        from ftrecipe_whisper.fsdd import fsdd_manifest

        manifest = fsdd_manifest(SHARED / "fsdd", tmp / "calls.csv", limit=24)
        return ["--set", f"data.train={manifest}", "--set", f"data.eval={manifest}",
                "--set", "data.columns.audio=audio", "--set", "data.columns.text=text"]
    if name == "llama2-7b-sql-qlora" and not (SHARED / "sql-eval").is_dir():
        pytest.skip("../shared/datasets/sql-eval is absent")
    return []


@pytest.mark.e2e
@pytest.mark.parametrize("path", [p for p in RECIPES if p.parent.name != "demo"], ids=lambda p: p.stem)
def test_shipped_recipe_smoke_run(path: Path, tmp_path: Path):
    out = tmp_path / "smoke"
    result = run_cli("run", str(path), "--smoke", "--quiet", "--output", str(out), *_data_overrides(path, tmp_path), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["smoke"] and (out / "model" / "README.md").is_file()
