"""ONNX export of a trained torchvision model, and the check that onnxruntime computes what torch does."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ftrecipe.plugin import RunFailure

OPSET = 17


def export_onnx(model: Any, inputs: tuple[Any, ...], path: Path, *, input_names: Sequence[str], output_names: Sequence[str],
                dynamic_axes: Mapping[str, Mapping[int, str]] | None = None) -> Path:
    """``model`` (an evaluation-mode copy on the CPU in float32) traced on ``inputs`` into ``path``.

    TorchScript-based export (``dynamo=False``): it handles torchvision's detection models, whose
    post-processing the dynamo exporter does not yet capture, and needs only the ``onnx`` package."""
    import torch

    exported = copy.deepcopy(model).to("cpu", torch.float32).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python values frozen into the graph
            torch.onnx.export(exported, inputs, str(path), dynamo=False, opset_version=OPSET, input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=dict(dynamic_axes or {}))
    except ImportError as error:
        raise RunFailure(f"ONNX export needs the onnx package ({error}): pip install \"ftrecipe[vision]\"") from error
    return path


def onnx_outputs(path: Path, inputs: Mapping[str, Any]) -> list[Any]:
    """What onnxruntime computes for ``inputs`` (name -> NumPy array) on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, dict(inputs))


def onnx_max_difference(path: Path, model: Any, inputs: tuple[Any, ...], input_names: Sequence[str]) -> float:
    """The largest absolute difference between onnxruntime's outputs and ``model``'s on ``inputs``
    (outputs flattened in order: a detector's boxes, labels and scores)."""
    import numpy as np
    import torch

    reference = copy.deepcopy(model).to("cpu", torch.float32).eval()
    with torch.no_grad():
        expected = reference(*inputs)
    flat = [t for t in _flatten(expected)]
    feeds = {name: tensor.numpy() for name, tensor in zip(input_names, _flatten(inputs), strict=False)}
    got = onnx_outputs(path, feeds)
    if len(got) != len(flat):
        raise RunFailure(f"{path}: onnxruntime gave {len(got)} outputs, torch {len(flat)}")
    worst = 0.0
    for ours, theirs in zip(flat, got, strict=True):
        ours = ours.detach().numpy()
        if ours.shape != theirs.shape:
            raise RunFailure(f"{path}: an output of shape {theirs.shape} in onnxruntime is {ours.shape} in torch")
        if ours.size:
            worst = max(worst, float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)))))
    return worst


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [t for item in value.values() for t in _flatten(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _flatten(item)]
    return [value]
