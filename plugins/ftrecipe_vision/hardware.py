"""``hardware.sync_batchnorm``: BatchNorm statistics over the global batch of a data-parallel run.

Each DDP process normalises with the statistics of its own micro-batch; with the few images per GPU of
detection (or large classification inputs) those are noisy, and torchvision's reference scripts offer
``--sync-bn`` (``torch.nn.SyncBatchNorm.convert_sync_batchnorm``) for it. The converted layers keep
their weights, buffers and names, so the saved ``state_dict`` is the plain torchvision one. PyTorch's
SyncBatchNorm computes only on CUDA (and XPU) tensors: on CPU processes the option is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ftrecipe.plugin import HardwareSection, Problem


class VisionHardware(HardwareSection):
    """Hardware, and BatchNorm across devices."""

    sync_batchnorm: bool = False
    """Normalise every training BatchNorm layer with the statistics of the whole global batch, gathered
    from all devices (``torch.nn.SyncBatchNorm``, torchvision's ``--sync-bn``): for several CUDA devices with
    a few images each. Frozen BatchNorm layers keep their statistics either way."""


def check_sync_batchnorm(recipe: Any) -> Iterator[Problem]:
    hardware = recipe.hardware
    if not hardware.sync_batchnorm:
        return
    if hardware.devices * hardware.nodes == 1:
        yield Problem(("hardware", "sync_batchnorm"), "synchronises BatchNorm across devices: set hardware.devices above 1")
    elif hardware.accelerator in ("cpu", "mps"):
        yield Problem(("hardware", "sync_batchnorm"), f"PyTorch's SyncBatchNorm runs on CUDA only, not on {hardware.accelerator} "
                                                      "(drop it, or train on CUDA devices)")
    elif hardware.strategy != "ddp":
        yield Problem(("hardware", "sync_batchnorm"), "tested with strategy ddp only")


def synchronise_batchnorm(model: Any, ctx: Any) -> int:
    """Convert ``model``'s BatchNorm layers to SyncBatchNorm in place where the recipe asks (before the
    frozen layers are put in evaluation mode: those never synchronise), said in the run log; returns how
    many were converted. ``ctx`` is the task's context (its recipe and device)."""
    if not ctx.recipe.hardware.sync_batchnorm:
        return 0
    from ftrecipe.plugin import RecipeRuntimeError

    device = ctx.device
    if device not in (None, "cuda", "xpu"):
        raise RecipeRuntimeError(("hardware", "sync_batchnorm"), f"PyTorch's SyncBatchNorm runs on CUDA only; this run is on {device}")
    import torch

    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # children replaced in place, weights kept
    assert converted is model, "the model itself is a BatchNorm layer"
    count = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    ctx.log(f"hardware.sync_batchnorm: {count} BatchNorm layers use the global batch's statistics")
    return count
