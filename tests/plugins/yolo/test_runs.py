"""The YOLO modality end to end through `ftrecipe run`: learning, transfer, freezing, resume, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_cli, run_ok, run_without_network

pytestmark = pytest.mark.e2e

SMALL = """\
name: yolo-small
model: {{modality: yolo, base: {base}, init: {init}, image_size: 64}}
head: {{mode: replace}}
data:
  format: synthetic
  train_size: 24
  eval_size: 8
  image_size: 64
  augment: [{{name: flip}}, {{name: mosaic}}, {{name: hsv}}]
training:
  epochs: {epochs}
  batch_size: 8
  nominal_batch: 8
  learning_rate: 0.004
  warmup_epochs: 1
  close_mosaic: 1
  log_every: 1
hardware: {{accelerator: cpu}}
{extra}"""


def small_recipe(tmp_path: Path, *, base: str = "yolo11n.yaml", init: str = "scratch", epochs: int = 4, extra: str = "",
                 name: str = "small.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SMALL.format(base=base, init=init, epochs=epochs, extra=extra))
    return path


def state(run: Path, step: int) -> dict:
    return torch.load(run / "checkpoints" / f"step-{step:07d}" / "ultralytics_state.pt", weights_only=False)


def records(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def test_a_replaced_head_keeps_the_transferred_backbone_bit_for_bit(tmp_path: Path, coco8: Path, pretrained: Path):
    """COCO8 with three of its 80 classes: the backbone transfers and stays frozen; what trained is what the summary counts."""
    from ultralytics.nn.tasks import load_checkpoint

    recipe = tmp_path / "coco8.yaml"
    recipe.write_text(f"""\
model: {{modality: yolo, base: {pretrained}, image_size: 64}}
head: {{mode: replace, labels: [person, elephant, giraffe]}}
freeze: {{strategy: transfer}}
data: {{format: yolo, yaml: {coco8 / 'coco8.yaml'}}}
training: {{epochs: 2, batch_size: 2, nominal_batch: 2, warmup_epochs: 0, log_every: 1}}
hardware: {{accelerator: cpu}}
""")
    before = sorted(p.name for p in coco8.rglob("*"))
    out = tmp_path / "run"
    result = run_cli("run", str(recipe), "--output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in coco8.rglob("*")) == before  # no label cache or anything else beside the user's data
    assert "head replaced for 3 classes:" in result.stdout and "tensors transferred from the weights" in result.stdout

    base = load_checkpoint(str(pretrained))[0].float().state_dict()
    live = state(out, 4)["model"]
    frozen = {k for k in live if int(k.split(".")[1]) < 11}
    assert frozen and all(torch.equal(live[k], base[k]) for k in frozen)  # weights and BatchNorm statistics
    last = torch.load(out / "model" / "last.pt", weights_only=False)
    saved = (last["ema"] or last["model"]).state_dict()  # Ultralytics strips the final file to the EMA weights
    assert all(torch.equal(saved[k].float(), base[k]) for k in frozen)
    trainable = {k for k in live if k not in frozen and "dfl" not in k and k.endswith(("weight", "bias"))}
    moved = [k for k in trainable if k not in base or base[k].shape != live[k].shape or not torch.equal(live[k], base[k])]
    assert len(moved) > 0.9 * len(trainable)  # (a detection scale that saw no box in 4 steps keeps its norms)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["freeze"]["trainable_parameters"] == sum(live[k].numel() for k in trainable)
    assert summary["freeze"]["frozen_layers"] == {"backbone": list(range(11))}
    weights = torch.load(out / "model" / "best.pt", weights_only=False)
    assert (weights["ema"] or weights["model"]).names == {0: "person", 1: "elephant", 2: "giraffe"}


def test_head_keep_fine_tunes_the_weights_own_classes(tmp_path: Path, coco8: Path, pretrained: Path):
    recipe = tmp_path / "keep.yaml"
    recipe.write_text(f"""\
model: {{modality: yolo, base: {pretrained}, image_size: 64}}
data: {{format: yolo, yaml: {coco8 / 'coco8.yaml'}}}
training: {{max_steps: 2, batch_size: 2}}
hardware: {{accelerator: cpu}}
""")
    summary = run_ok(recipe, tmp_path / "run")
    assert summary["steps"] == 2 and summary["freeze"]["trainable_fraction"] > 0.99
    best = torch.load(tmp_path / "run" / "model" / "best.pt", weights_only=False)
    assert len((best["ema"] or best["model"]).names) == 80


def test_an_interrupted_run_resumes_exactly_and_then_takes_more_epochs(tmp_path: Path, example_site: Path):
    """Ctrl-C mid-epoch (exit 130), --resume from the last whole epoch: the same weights, EMA, optimizer and
    losses as an uninterrupted run. Then --resume with more epochs, which Ultralytics' own resume refuses."""
    recipe = small_recipe(tmp_path, extra="callbacks: [fault]\n")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_cli("run", str(recipe), "--output", str(whole), "--quiet", site=example_site).returncode == 0
    first = run_cli("run", str(recipe), "--output", str(cut), site=example_site, env={"FTRECIPE_EXAMPLE_FAULT": "int:11"})
    assert first.returncode == 130, first.stderr[-2000:]
    assert "resuming continues from" in first.stderr and "step-0000009" in first.stderr
    assert not (cut / "checkpoints" / "step-0000012").exists()
    resumed = run_cli("run", str(recipe), "--output", str(cut), "--resume", site=example_site)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step-0000009: step 9" in resumed.stdout

    a, b = state(whole, 12), state(cut, 12)
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys() and all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
    assert a["ema_updates"] == b["ema_updates"] and a["best_fitness"] == b["best_fitness"]
    assert all(torch.equal(x, y) for x, y in zip(a["optimizer"]["state"][0].values(), b["optimizer"]["state"][0].values()))
    assert records(whole, "train") == records(cut, "train")  # losses and learning rates, step for step
    assert [r["mAP50"] for r in records(whole, "eval")] == [r["mAP50"] for r in records(cut, "eval")]

    longer = run_cli("run", str(recipe), "--output", str(whole), "--resume", "--quiet", "--set", "training.epochs=6",
                     site=example_site)
    assert longer.returncode == 0, longer.stderr[-3000:]
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["steps"] == 18 and summary["epochs_completed"] == 6
    again = run_cli("run", str(recipe), "--output", str(whole), "--resume", "--quiet", "--set", "training.epochs=6",
                    site=example_site)
    assert again.returncode == 2 and "the run is complete at step 18 of 18: raise training.epochs" in again.stderr


def test_sigterm_stops_between_batches_with_exit_143(tmp_path: Path, example_site: Path):
    recipe = small_recipe(tmp_path, epochs=2, extra="callbacks: [fault]\n")
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), site=example_site,
                     env={"FTRECIPE_EXAMPLE_FAULT": "term:2"})
    assert result.returncode == 143, result.stderr[-2000:]
    assert "no checkpoint was written yet; resuming starts over" in result.stderr


def test_onnx_export_gives_the_boxes_of_the_pt(tmp_path: Path):
    """The exported file loads in onnxruntime and detects what best.pt detects on one image."""
    import numpy as np
    import onnxruntime
    from ultralytics import YOLO

    recipe = small_recipe(tmp_path, epochs=2, extra="output: {export: [onnx]}\n")
    run_ok(recipe, tmp_path / "run")
    model = tmp_path / "run" / "model"
    session = onnxruntime.InferenceSession(str(model / "best.onnx"))
    assert session.get_inputs()[0].shape == [1, 3, 64, 64]
    image = next((tmp_path / "run" / "data" / "images" / "val").iterdir())
    pt = YOLO(str(model / "best.pt")).predict(str(image), imgsz=64, conf=0.001, max_det=20, verbose=False)[0].boxes
    onnx = YOLO(str(model / "best.onnx"), task="detect").predict(str(image), imgsz=64, conf=0.001, max_det=20, verbose=False)[0].boxes
    assert len(pt) > 0 and len(pt) == len(onnx)
    assert np.allclose(pt.xyxy.numpy(), onnx.xyxy.numpy(), atol=1.0)  # pixels
    assert np.array_equal(pt.cls.numpy(), onnx.cls.numpy())


def test_no_socket_is_opened_by_a_run_with_ftrecipes_defaults(tmp_path: Path, pretrained: Path):
    """Without YOLO_OFFLINE or YOLO_CONFIG_DIR in the environment and with every socket (and DNS lookup)
    refused, a run that loads weights, checks the data, trains, validates and exports still succeeds."""
    recipe = small_recipe(tmp_path, base=str(pretrained), init="pretrained", extra="output: {export: [onnx]}\n")
    result, attempts = run_without_network(tmp_path, "run", str(recipe), "--output", str(tmp_path / "run"), "--quiet",
                                           "--max-steps", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert attempts == ""
    assert (tmp_path / "home" / ".cache" / "ftrecipe" / "ultralytics" / "Ultralytics" / "Arial.ttf").is_file()
    assert (tmp_path / "run" / "model" / "best.onnx").is_file()
    assert not (Path.cwd() / "runs").exists()


def test_the_throughput_benchmark_runs_in_tiny_mode():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(ROOT / "bench" / "yolo_throughput.py"), "--tiny"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ratio ftrecipe / Ultralytics:" in result.stdout and "images/s" in result.stdout


def test_weights_whose_backbone_does_not_fit_are_refused(tmp_path: Path, coco8: Path):
    """A .pt whose tensors do not fit the architecture it names (here: YOLO11n weights labelled as YOLO11s)
    would train a head on a random backbone; the run stops and says so."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    small = YOLO("yolo11n.yaml")
    small.model.yaml = DetectionModel("yolo11s.yaml", verbose=False).yaml
    weights = tmp_path / "mislabelled.pt"
    small.save(str(weights))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {{modality: yolo, base: {weights}, image_size: 64}}\nhead: {{mode: replace, labels: [person]}}\n"
                      f"data: {{format: yolo, yaml: {coco8 / 'coco8.yaml'}}}\ntraining: {{max_steps: 1, batch_size: 2}}\n"
                      "hardware: {accelerator: cpu}\n")
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "the backbone did not transfer" in result.stderr and "is it the same architecture?" in result.stderr
