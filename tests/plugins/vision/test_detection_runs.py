"""The object-detection modality through `ftrecipe`: one shared --smoke run of the pets recipe and what it
leaves (model card code that runs, ONNX that onnxruntime agrees with, drawn samples), the plan, and mistakes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from ftrecipe.validation import validate_file
from tests.conftest import ROOT, run_cli

PETS = ROOT / "recipes" / "fasterrcnn-resnet50-pets.yaml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The pets recipe as shipped, with --smoke: a tiny Faster R-CNN of the same family, two steps, ONNX export."""
    out = tmp_path_factory.mktemp("pets") / "run"
    result = run_cli("run", str(PETS), "--smoke", "--output", str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stdout


@pytest.mark.e2e
def test_the_smoke_run_reports_the_data_and_saves_a_torchvision_model(smoke_run):
    out, stdout = smoke_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["smoke"]
    assert {"mAP50", "mAP50-95", "AP50/cat", "AP/dog"} <= set(summary["eval_after"])
    data = summary["data"]
    assert data["train_boxes_per_class"]["cat"] + data["eval_boxes_per_class"]["cat"] == 5 and data["classes"] == ["cat", "dog"]
    assert summary["freeze"]["frozen_layers"] == {"body": [0, 1]}  # transfer, unfreeze_top 3: conv1 and layer1 frozen
    assert (out / "samples" / "step-0.png").is_file() and (out / "samples" / "step-2.png").is_file()
    described = json.loads((out / "model" / "torchvision.json").read_text())
    assert described["classes"] == ["__background__", "cat", "dog"] and described["kwargs"]["num_classes"] == 3
    assert "ONNX export model.onnx: onnxruntime agrees with torch" in stdout


@pytest.mark.e2e
def test_the_model_cards_code_rebuilds_the_trained_model(smoke_run, monkeypatch: pytest.MonkeyPatch):
    out, _ = smoke_run
    card = (out / "model" / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", card, re.S)
    monkeypatch.chdir(out)
    namespace: dict = {}
    exec(compile(code, "model card", "exec"), namespace)  # noqa: S102 - the card's own snippet, as a user runs it
    from safetensors.torch import load_file

    saved = load_file(str(out / "model" / "model.safetensors"))
    state = namespace["model"].state_dict()
    assert saved.keys() == state.keys() and all(torch.equal(saved[k], state[k]) for k in saved)
    import onnxruntime

    image = torch.rand(3, 80, 96)
    with torch.no_grad():
        expected = namespace["model"]([image])[0]
    session = onnxruntime.InferenceSession(str(out / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    boxes, labels, scores = session.run(None, {"image": image.numpy()})
    assert boxes.shape == tuple(expected["boxes"].shape)  # the exported graph takes other image sizes too
    assert torch.allclose(torch.from_numpy(scores), expected["scores"], atol=1e-4)


def test_a_torchvision_builders_card_snippet_loads_what_was_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The builder path: fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=3), as the card shows it."""
    from ftrecipe_vision.detection.architecture import Architecture
    from ftrecipe_vision.saving import save_torchvision

    arch = Architecture("fasterrcnn_resnet50_fpn", 3, {"min_size": 64, "max_size": 64})
    model = arch.build()
    save_torchvision(model, tmp_path / "model", builder=arch.base, kwargs=arch.constructor_kwargs(), classes=["bg", "a", "b"])
    snippet = arch.snippet()
    assert "get_model('fasterrcnn_resnet50_fpn', weights=None, weights_backbone=None, num_classes=3, min_size=64" in snippet
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102
    rebuilt = namespace["model"].state_dict()
    assert all(torch.equal(rebuilt[k], v) for k, v in model.state_dict().items())


def test_onnx_export_agrees_with_torch_on_real_detections(tmp_path: Path):
    from ftrecipe_vision.detection.architecture import Architecture
    from ftrecipe_vision.onnx_export import export_onnx, onnx_max_difference

    torch.manual_seed(0)
    model = Architecture.of("fasterrcnn_resnet50_fpn", {"box_score_thresh": 0.0}, 3, smoke=True).build().eval()
    image = torch.rand(3, 64, 80)
    with torch.no_grad():
        assert len(model([image])[0]["boxes"]) > 0  # something to compare
    path = export_onnx(model, ([image],), tmp_path / "m.onnx", input_names=["image"], output_names=["boxes", "labels", "scores"],
                       dynamic_axes={"image": {1: "h", 2: "w"}, "boxes": {0: "n"}, "labels": {0: "n"}, "scores": {0: "n"}})
    assert onnx_max_difference(path, model, ([image],), ["image"]) < 1e-3


def test_the_plan_counts_torchvisions_trainable_backbone_layers(tmp_path: Path):
    result = run_cli("plan", str(PETS), "--format", "json")
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads(result.stdout)
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    with torch.device("meta"):
        reference = dict(fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=3).named_parameters())

    def norm(name: str) -> bool:  # the body's BatchNorm: FrozenBatchNorm2d once weights load (buffers, not parameters)
        return name.startswith("backbone.body.") and (".bn" in name or "downsample.1" in name or name.startswith("backbone.body.bn1"))

    frozen_norms = sum(p.numel() for name, p in reference.items() if norm(name))
    frozen_stages = sum(p.numel() for name, p in reference.items()
                        if name.startswith(("backbone.body.conv1", "backbone.body.layer1")) and not norm(name))
    assert plan["params"]["total"] == sum(p.numel() for p in reference.values()) - frozen_norms
    assert plan["params"]["trainable"] == plan["params"]["total"] - frozen_stages  # trainable_backbone_layers=3
    assert plan["data"]["train_examples"] == 8 and plan["memory"]["breakdown"]["activations"] > 0


# -- mistakes ----------------------------------------------------------------------------------------------

RECIPE = """\
model:
  modality: object-detection
  base: {base}
  init: {init}
  config: {config}
data: {{format: synthetic, train_size: 4, eval_size: 2, image_size: 64}}
freeze: {{strategy: {strategy}}}
{extra}"""


@pytest.mark.parametrize(("kw", "key", "message"), [
    ({"base": "fasterrcnn_mobilenet_v3_large_fpn"}, "model.base", "fasterrcnn_resnet50_fpn"),
    ({"config": "{anchors: 3}"}, "model.config.anchors", "unknown key 'anchors'"),
    ({"init": "pretrained", "config": "{backbone: resnet10}"}, "model.config.backbone", "needs init: scratch"),
    ({"base": "fasterrcnn_resnet50_fpn_v2", "config": "{fpn_channels: 32}"}, "model.config.fpn_channels", "needs init: scratch"),
    ({"config": "{backbone: resnet7}"}, "model.config.backbone", "must be one of resnet10"),
    ({"config": "{min_size: 0.5}"}, "model.config.min_size", "positive whole number"),
    ({"strategy": "transfer"}, "freeze.strategy", "never trained"),
    ({"strategy": "lora"}, "freeze.strategy", ""),
    ({"extra": "head: {mode: keep}"}, "head.mode", ""),
    ({"extra": "model_weights: x", "init": "scratch"}, "model_weights", ""),
], ids=["base", "config-key", "small-pretrained", "small-v2", "resnet", "min-size", "transfer-scratch", "lora", "keep", "unknown"])
def test_recipe_mistakes_are_located(tmp_path: Path, kw: dict, key: str, message: str):
    values = {"base": "fasterrcnn_resnet50_fpn", "init": "scratch", "config": "{}", "strategy": "full", "extra": "", **kw}
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(**values))
    result = validate_file(path)
    texts = [d.text() for d in result.diagnostics]
    assert not result.ok and any(f": {key}:" in t and message in t for t in texts), texts


def test_weights_that_are_not_here_are_located_before_torch_loads(tmp_path: Path):
    result = run_cli("run", str(PETS), "--output", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(r"fasterrcnn-resnet50-pets.yaml:\d+:\d+: model.weights: the fasterrcnn_resnet50_fpn_v2 weights COCO_V1 "
                     r"are not in torch's cache", result.stderr), result.stderr
    assert "get_weight('FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1')" in result.stderr


@pytest.mark.e2e
def test_labels_the_data_does_not_have_stop_the_run_at_head_labels(tmp_path: Path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(base="fasterrcnn_resnet50_fpn", init="scratch", config="{}", strategy="full",
                                  extra="head: {mode: replace, labels: [circle, hexagon]}"))
    result = run_cli("run", str(path), "--smoke", "--output", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:" in result.stderr and "head.labels: hexagon: not among the data's classes" in result.stderr


# -- resume ------------------------------------------------------------------------------------------------

TINY_DETECTOR = """\
model:
  modality: object-detection
  base: fasterrcnn_resnet50_fpn
  init: scratch
  config: {backbone: resnet10, fpn_channels: 16, representation_size: 32, min_size: 64, max_size: 64}
"""
"""A Faster R-CNN of torchvision's parts small enough for a few CPU steps."""

RESUMABLE = TINY_DETECTOR + """\
data:
  format: synthetic
  train_size: 8
  eval_size: 2
  image_size: 64
  augment: [{name: flip}, {name: scale}, {name: color}]
training: {max_steps: 6, batch_size: 2, optimizer: sgd, learning_rate: 0.01, checkpoint_every: 2, log_every: 1, eval_every: 100}
hardware: {accelerator: cpu, precision: fp32}
evaluation: {samples: 0}
callbacks: [fault]
"""


@pytest.mark.e2e
def test_a_detector_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path: Path, example_site: Path):
    """kill -9 after step 5: the step-4 checkpoint continues (its augmentations and shuffling included) to
    the weights and losses of a run that was never stopped."""
    from tests.conftest import metric_records, same_safetensors

    recipe = tmp_path / "detector.yaml"
    recipe.write_text(RESUMABLE)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_cli("run", str(recipe), "--output", str(whole), "--quiet", site=example_site).returncode == 0
    killed = run_cli("run", str(recipe), "--output", str(cut), "--quiet", site=example_site,
                     env={"FTRECIPE_EXAMPLE_FAULT": "kill:5"})
    assert killed.returncode in (137, -9), killed.stderr
    resumed = run_cli("run", str(recipe), "--output", str(cut), "--resume", site=example_site)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step-0000004: step 4" in resumed.stdout
    assert same_safetensors(whole / "model", cut / "model")
    keys = ("step", "loss", "learning_rate")
    assert metric_records(cut, keys) == metric_records(whole, keys)
