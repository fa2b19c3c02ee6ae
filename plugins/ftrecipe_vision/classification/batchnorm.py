"""BatchNorm layers of the frozen part keep their statistics: they run in evaluation mode while the rest trains.

A frozen convolution followed by a BatchNorm in training mode would still change: the layer normalises with
each batch's statistics and updates its running ones, so the "frozen" backbone drifts with small fine-tuning
batches (Keras' transfer-learning guide: "keep the BatchNormalization layers in inference mode"). The
runner puts the whole model in training mode (``model.train()``) at the start and after every evaluation,
so each such layer gets a forward pre-hook that puts it back into evaluation mode before it runs.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _keep_statistics(module: nn.Module, args: tuple) -> None:
    module.training = False


def frozen_batchnorms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers whose weight and bias do not train (the frozen part of the model)."""
    found = []
    for name, module in model.named_modules():
        parameters = list(module.parameters(recurse=False)) if isinstance(module, _BatchNorm) else []
        if parameters and not any(p.requires_grad for p in parameters):
            found.append(name)
    return found


def keep_frozen_statistics(model: nn.Module) -> list[str]:
    """Make every frozen BatchNorm layer run in evaluation mode, now and after any ``model.train()``; returns their names."""
    names = frozen_batchnorms(model)
    for name in names:
        module = model.get_submodule(name)
        if not getattr(module, "_ftrecipe_keeps_statistics", False):
            module.register_forward_pre_hook(_keep_statistics)
            module._ftrecipe_keeps_statistics = True
        module.eval()
    return names
