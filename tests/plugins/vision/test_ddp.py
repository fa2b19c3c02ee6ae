"""Both vision modalities on two processes (DDP over gloo on a CPU), through the common runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.plugins.vision.test_detection_runs import TINY_DETECTOR

pytestmark = pytest.mark.e2e

CLASSIFIER = """\
model: {modality: image-classification, base: resnet18, init: scratch, config: {blocks: 1}, image_size: 32}
freeze: {strategy: partial, freeze: ["bn1.*", "*.bn*", "*.downsample.1.*"]}
data: {format: synthetic, train_size: 32, eval_size: 8, size: 32}
training: {max_steps: 3, batch_size: 8, learning_rate: 1.0e-2, log_every: 1}
hardware: {accelerator: cpu, precision: fp32}
evaluation: {before_training: false}
"""

DETECTOR = TINY_DETECTOR + """\
data: {format: synthetic, train_size: 8, eval_size: 4, image_size: 64}
training: {max_steps: 2, batch_size: 2, optimizer: sgd, learning_rate: 0.01, log_every: 1}
hardware: {accelerator: cpu, precision: fp32, devices: 2}
evaluation: {samples: 0, before_training: false}
"""


def test_a_classifier_on_two_processes_matches_one_with_the_same_global_batch(tmp_path: Path):
    """4 + 4 examples a step on two processes, 8 on one: the same weights within 1e-3. The BatchNorm layers
    are frozen here (evaluation mode), because each process would otherwise normalise its own 4 examples."""
    import torch
    from safetensors.torch import load_file

    recipe = tmp_path / "cls.yaml"
    recipe.write_text(CLASSIFIER)
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli("run", str(recipe), "--output", str(one), "--quiet").returncode == 0
    done = run_cli("run", str(recipe), "--output", str(two), "--quiet", "--set", "hardware.devices=2",
                   "--set", "training.batch_size=4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((two / "summary.json").read_text())["world_size"] == 2
    expected, got = load_file(one / "model" / "model.safetensors"), load_file(two / "model" / "model.safetensors")
    assert expected.keys() == got.keys()
    assert all(torch.allclose(expected[k].float(), got[k].float(), atol=1e-3) for k in expected)


def test_a_detector_trains_on_two_processes_and_saves_one_torchvision_state_dict(tmp_path: Path):
    from safetensors.torch import load_file

    recipe = tmp_path / "det.yaml"
    recipe.write_text(DETECTOR)
    out = tmp_path / "run"
    done = run_cli("run", str(recipe), "--output", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2 and "mAP50" in summary["eval_after"]
    keys = load_file(out / "model" / "model.safetensors").keys()
    assert "roi_heads.box_predictor.cls_score.weight" in keys and not any(k.startswith("module.") for k in keys)
