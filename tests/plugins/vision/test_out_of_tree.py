"""ftrecipe-vision as a third party ships it: built and installed from its own folder into a site directory
(dist-info and entry points, nothing else of the checkout), found through the `ftrecipe` entry point, and
running its classification demo there to the accuracy the recipe promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftrecipe.testing import install_plugin
from tests.conftest import ROOT, run_cli

DEMO = ROOT / "recipes" / "demo" / "image-classification.yaml"


@pytest.mark.e2e
def test_the_installed_distribution_runs_its_classification_demo(tmp_path: Path):
    site = install_plugin(ROOT / "plugins" / "ftrecipe_vision", tmp_path / "site")
    found = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m, ftrecipe_vision; "
         "print(ftrecipe_vision.__file__); print(sorted(e.value for e in m.entry_points(group='ftrecipe')))"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(site)}, check=True,
    ).stdout.splitlines()
    assert Path(found[0]).is_relative_to(site), found  # the installed copy, not the checkout's
    assert "ftrecipe_vision.classification.plugin" in found[1] and "ftrecipe_vision.detection.plugin" in found[1]

    listed = json.loads(run_cli("plugins", "--format", "json", site=site).stdout)["plugins"]
    (vision,) = [p for p in listed if p["name"] == "image-classification"]
    assert (vision["distribution"], vision["builtin"], vision["error"]) == ("ftrecipe-vision", False, None)

    out = tmp_path / "demo"
    result = run_cli("run", str(DEMO), "--output", str(out), "--quiet", site=site, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_before"]["accuracy"] <= 0.5  # three classes: chance is a third
    assert summary["eval_after"]["accuracy"] >= 0.9, summary["eval_after"]
    assert (out / "model" / "model.safetensors").is_file() and list((out / "samples").glob("step-*.png"))
