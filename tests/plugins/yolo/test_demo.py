"""recipes/demo/yolo.yaml as shipped (a file of its own, so that the suite's workers run it beside the other
YOLO runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tests.plugins.yolo.test_runs import records

pytestmark = pytest.mark.e2e


def test_the_demo_learns_to_detect_the_shapes_it_draws(tmp_path: Path):
    """The README's promise for recipes/demo/yolo.yaml, run as shipped."""
    out = tmp_path / "demo"
    result = run_cli("run", str(ROOT / "recipes" / "demo" / "yolo.yaml"), "--output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_before"]["mAP50"] <= 0.05
    assert summary["eval_after"]["mAP50"] >= 0.5, summary["eval_after"]
    assert {"mAP50", "mAP50-95", "precision", "recall"} <= set(summary["eval_after"])
    assert (out / "model" / "best.pt").is_file() and (out / "model" / "last.pt").is_file()
    assert "library_name: ultralytics" in (out / "model" / "README.md").read_text()
    periodic = records(out, "eval")
    assert len(periodic) == summary["epochs_completed"] and periodic[-1]["mAP50"] > periodic[0]["mAP50"]
    # Ultralytics' own console output is replaced by ftrecipe's (its settings banner, tables, progress bars)
    assert "Ultralytics" not in result.stdout.replace("Ultralytics:", "") and "Epoch" not in result.stdout
    assert "augmentation: fliplr=0.5, hsv_h=0.015" in result.stdout
