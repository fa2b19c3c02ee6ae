"""Commands forked from the tests' warm process behave as in a fresh interpreter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ftrecipe.testing import run_cli

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm start forks; this platform has no fork")

BAD = "model: {modality: causal-lm, base: x, init: scratch}\ntraining: {epochs: -1}\n"


def test_a_warm_command_answers_as_a_fresh_one(tmp_path: Path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(BAD)
    warm = run_cli("validate", str(recipe), cwd=tmp_path)
    fresh = run_cli("validate", str(recipe), cwd=tmp_path, env={"FTRECIPE_WARM_START": "0"})
    assert warm.returncode == fresh.returncode == 2
    assert warm.stdout == fresh.stdout and warm.stderr == fresh.stderr
    assert "bad.yaml:2:" in warm.stdout + warm.stderr


def test_a_sitecustomize_on_the_path_gets_a_fresh_interpreter(tmp_path: Path):
    """Only a starting interpreter runs ``sitecustomize``: a forked child would silently skip it (a test
    that blocks an import that way would then see the import succeed)."""
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "ran"
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(BAD)
    assert run_cli("validate", str(recipe), env={"PYTHONPATH": str(site)}).returncode == 2
    assert marker.exists()
