"""recipes/demo/object-detection.yaml as shipped: the README's promise (mAP50 from 0 to above 0.5), in a file of
its own so that the suite's workers run it beside the other vision runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.e2e


def test_the_demo_learns_to_find_the_shapes_it_draws(tmp_path: Path):
    out = tmp_path / "demo"
    result = run_cli("run", str(ROOT / "recipes" / "demo" / "object-detection.yaml"), "--output", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    before, after = summary["eval_before"], summary["eval_after"]
    assert before["mAP50"] <= 0.05
    assert after["mAP50"] >= 0.5, after  # measured 0.72 to 0.79 (one or two threads)
    assert all(after[f"AP50/{shape}"] >= 0.3 for shape in ("circle", "square", "triangle")), after
    assert after["mAP50-95"] > before["mAP50-95"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r["mAP50"] for r in rows if r["kind"] in ("eval_before", "eval", "eval_after")]
    assert evals[0] < evals[1] <= evals[-1] + 0.05  # it rises at the mid-run evaluation already
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert losses[-1] < 0.6 * losses[0]
    assert (out / "samples" / "step-0.png").is_file() and (out / "samples" / "step-250.png").is_file()
    assert (out / "model" / "model.safetensors").is_file() and (out / "loss_curve.png").is_file()
