"""hardware.sync_batchnorm (torchvision's --sync-bn): refused where PyTorch cannot run it, located; the
converted classifier keeps the torchvision state_dict and its frozen BatchNorm statistics. (Synchronising
needs two CUDA devices: no run here shows the statistics shared.)"""

from __future__ import annotations

import pytest
import torch

from ftrecipe.freeze import apply_freeze_plan
from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe.validation import validate_text
from ftrecipe_vision.hardware import synchronise_batchnorm
from tests.plugins.vision.test_classification_units import TINY, task_of

DATA = "data: {format: synthetic, train_size: 8, eval_size: 4, size: 32}\n"
DETECTOR = ("model: {modality: object-detection, base: fasterrcnn_resnet50_fpn, init: scratch}\n"
            "data: {format: synthetic, train_size: 8, eval_size: 4}\n")


@pytest.mark.parametrize(("text", "expected"), [
    (TINY + DATA + "hardware: {sync_batchnorm: true}\n",
     "r.yaml:3:28: hardware.sync_batchnorm: synchronises BatchNorm across devices: set hardware.devices above 1"),
    (TINY + DATA + "hardware: {devices: 2, accelerator: cpu, sync_batchnorm: true}\n",
     "r.yaml:3:58: hardware.sync_batchnorm: PyTorch's SyncBatchNorm runs on CUDA only, not on cpu (drop it, or train on CUDA devices)"),
    (DETECTOR + "hardware: {devices: 2, accelerator: mps, sync_batchnorm: true}\n",
     "r.yaml:3:58: hardware.sync_batchnorm: PyTorch's SyncBatchNorm runs on CUDA only, not on mps (drop it, or train on CUDA devices)"),
])
def test_validate_refuses_sync_batchnorm_where_it_cannot_run(text, expected):
    assert [d.text() for d in validate_text(text, source="r.yaml").diagnostics] == [expected]


def test_two_cuda_devices_with_sync_batchnorm_are_a_valid_recipe():
    for text in (TINY + DATA, DETECTOR):
        assert validate_text(text + "hardware: {devices: 2, accelerator: cuda, sync_batchnorm: true}\n", source="r.yaml").ok


def test_the_converted_classifier_keeps_its_state_dict_and_frozen_statistics(tmp_path):
    """The first layers frozen, on two CUDA devices (the conversion is checked here; the run on CPU refused):
    every BatchNorm becomes a SyncBatchNorm holding the same tensors under the same names, the frozen
    ones stay in evaluation mode, and the state_dict loads into torchvision's own ResNet."""
    text = TINY + DATA + "freeze: {strategy: partial, freeze_layers: {first: 2}}\nhardware: {devices: 2, accelerator: cuda, sync_batchnorm: true}\n"
    task = task_of(text, tmp_path)
    task.build_data()
    model = task.build_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model, _ = apply_freeze_plan(model, task.recipe, task.anatomy(model))
    task.ctx.device = "cuda"
    task.apply_speedups(model)
    synced = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert synced and not any(type(m) is torch.nn.BatchNorm2d for m in model.modules())
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    from torchvision.models.resnet import BasicBlock, ResNet

    ResNet(BasicBlock, [1, 1, 1, 1], num_classes=3).load_state_dict(after)

    model.train()  # a training step (one process: SyncBatchNorm normalises like BatchNorm) moves only the trained statistics
    model(torch.randn(4, 3, 32, 32))
    frozen = {m for m in synced if not m.weight.requires_grad}
    assert frozen and len(frozen) < len(synced)
    names = {module: name for name, module in model.named_modules()}
    moved = {m for m in synced if not torch.equal(m.running_mean, before[names[m] + ".running_mean"])}
    assert moved == set(synced) - frozen

    task.ctx.device = "cpu"
    with pytest.raises(RecipeRuntimeError, match="runs on CUDA only; this run is on cpu"):
        synchronise_batchnorm(task.build_model(), task.ctx)
