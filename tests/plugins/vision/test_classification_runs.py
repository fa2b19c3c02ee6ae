"""The image-classification modality through `ftrecipe run` and `plan`, the way a user runs it: one small
run shared by the tests (uninterrupted, and stopped by Ctrl-C then resumed: the same weights bit for bit),
its confusion matrices, the model card's snippet executed, the ONNX export checked with onnxruntime; the
shipped recipe planned, and refused offline without its weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import ROOT, metric_records, run_cli, run_whole_and_resumed, same_safetensors

RECIPE = """\
model: {modality: image-classification, base: resnet18, init: scratch, config: {blocks: 1}, image_size: 32}
data:
  format: synthetic
  train_size: 24
  eval_size: 12
  size: 32
  augment:
    - {name: random_resized_crop, scale: [0.5, 1.0]}
    - {name: flip}
    - {name: color_jitter}
training: {max_steps: 6, batch_size: 8, learning_rate: 1.0e-3, log_every: 1}
hardware: {accelerator: cpu, precision: fp32}
evaluation: {metrics: [accuracy, top5_accuracy, f1]}
output: {export: [onnx]}
callbacks: [fault]
"""


@pytest.fixture(scope="module")
def cls_runs(tmp_path_factory, example_site) -> tuple[Path, Path]:
    """(uninterrupted run, run stopped after step 3 and resumed) of RECIPE."""
    tmp = tmp_path_factory.mktemp("cls-runs")
    recipe = tmp / "shapes.yaml"
    recipe.write_text(RECIPE)
    return run_whole_and_resumed(recipe, tmp, example_site, stop_at=3)


@pytest.mark.e2e
def test_an_interrupted_run_resumes_exactly(cls_runs):
    whole, cut = cls_runs
    assert same_safetensors(whole / "model", cut / "model")  # augmentation drawn per (seed, epoch, index)
    keys = ("step", "kind", "loss", "lr", "epoch", "eval_loss", "accuracy")
    assert metric_records(cut, keys) == metric_records(whole, keys)


@pytest.mark.e2e
def test_the_run_reports_per_class_and_draws_confusion_matrices(cls_runs):
    whole, _ = cls_runs
    summary = json.loads((whole / "summary.json").read_text())
    after = summary["eval_after"]
    assert {"eval_loss", "accuracy", "f1", "accuracy/circle", "accuracy/square", "accuracy/triangle"} <= set(after)
    assert "top5_accuracy" not in after  # three classes: every class is in the top five
    data = summary["data"]
    assert data["classes"] == ["circle", "square", "triangle"] and sum(data["train_images_per_class"].values()) == 24
    assert "random_resized_crop" in data["augmentation"]
    assert {p.name for p in (whole / "samples").glob("*.png")} == {"step-0.png", "step-6.png"}
    assert Image.open(whole / "samples" / "step-6.png").size[0] > 200


@pytest.mark.e2e
def test_the_model_card_snippet_rebuilds_the_model_and_onnx_agrees(cls_runs, monkeypatch):
    whole, _ = cls_runs
    card = (whole / "model" / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", card, re.S)
    monkeypatch.chdir(whole)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)).save(whole / "photo.jpg")
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the card's own snippet, as a user runs it
    model, logits = namespace["model"], namespace["logits"]
    assert logits.shape == (1, 3)

    description = json.loads((whole / "model" / "torchvision.json").read_text())
    assert description["classes"] == ["circle", "square", "triangle"] and description["onnx"]["max_abs_difference"] < 1e-4
    import onnxruntime

    pixels = torch.randn(2, 3, 32, 32)  # the batch axis is dynamic
    session = onnxruntime.InferenceSession(str(whole / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {"pixel_values": pixels.numpy()})
    with torch.no_grad():
        assert np.abs(ours - model(pixels).numpy()).max() < 1e-4


def test_the_shipped_recipe_plans_its_frozen_backbone(tmp_path):
    result = run_cli("plan", str(ROOT / "recipes" / "resnet50-cats-vs-dogs.yaml"), "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads(result.stdout)
    assert plan["params"]["trainable"] == 2048 * 2 + 2 and plan["params"]["total"] == 23_512_130
    assert plan["data"]["balance"] and plan["data"]["guidance"]["unit"] == "images"
    assert not any("revision" in w for w in plan["warnings"]), plan["warnings"]  # weights are named by model.weights


def test_the_shipped_recipe_without_its_weights_says_how_to_get_them(tmp_path):
    path = ROOT / "recipes" / "resnet50-cats-vs-dogs.yaml"
    result = run_cli("run", str(path), "--quiet", "--output", str(tmp_path / "run"), env={"TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 2, result.stderr
    lines = path.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if line.strip().startswith("weights:"))
    assert result.stderr.startswith(f"{path}:{number}:")
    assert "model.weights: the resnet50 weights IMAGENET1K_V2 are not in torch's cache" in result.stderr
    assert "get_weight('ResNet50_Weights.IMAGENET1K_V2')" in result.stderr and "Traceback" not in result.stderr
