"""Normalisation layers on the meta device, answered from an earlier call of the same shapes.

PyTorch computes the output shapes of ``native_batch_norm``, ``native_group_norm`` and
``native_layer_norm`` on meta tensors by running their Python decompositions: 3 to 5 ms a call, most of
a YOLO or Stable Diffusion trace. Their outputs are new tensors whose shapes, strides and types follow
from the inputs' alone, so a traced step asks each distinct call once and hands later ones new meta
tensors laid out like its outputs. Autograd (above this mode) still records every call and saves what
it always saves, so the plan's numbers are unchanged. No normalisation has a FLOP formula (its
decomposition adds none either), so skipping it leaves the FLOP count as it was.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ftrecipe.plan.repeats import value_signature

aten = torch.ops.aten
NORMS = frozenset({
    aten.native_batch_norm.default,
    aten._native_batch_norm_legit.default,
    aten._native_batch_norm_legit.no_stats,
    aten._native_batch_norm_legit_no_training.default,
    aten.native_group_norm.default,
    aten.native_layer_norm.default,
})

_Layout = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]


def _layout(output: Any) -> tuple[_Layout, ...] | None:
    """The outputs' layouts, where each is a fresh meta tensor that ``empty_strided`` rebuilds exactly."""
    outputs = output if isinstance(output, tuple) else (output,)
    layouts = []
    for tensor in outputs:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type != "meta" or tensor.storage_offset() != 0:
            return None
        layout = (tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if _fresh(layout).untyped_storage().nbytes() != tensor.untyped_storage().nbytes():
            return None
        layouts.append(layout)
    return tuple(layouts)


def _fresh(layout: _Layout) -> torch.Tensor:
    shape, stride, dtype = layout
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


class RepeatedNorms(TorchDispatchMode):
    """Within the block, a normalisation call on meta tensors that repeats an earlier one's shapes is
    answered with new tensors laid out like that call's outputs; ``asked`` counts the calls computed."""

    def __init__(self) -> None:
        super().__init__()
        self.known: dict[Any, tuple[tuple[_Layout, ...] | None, bool]] = {}
        self.asked = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func not in NORMS or not all(a.device.type == "meta" for a in args if isinstance(a, torch.Tensor)):
            return func(*args, **kwargs)
        key = (func, value_signature(args), value_signature(kwargs))
        if key in self.known:
            layouts, many = self.known[key]
            if layouts is not None:
                fresh = tuple(_fresh(layout) for layout in layouts)
                return fresh if many else fresh[0]
        self.asked += 1
        output = func(*args, **kwargs)
        self.known[key] = (_layout(output), isinstance(output, tuple))
        return output
