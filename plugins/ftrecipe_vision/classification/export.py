"""The saved classifier: a torchvision state dict in safetensors, how to rebuild it, and an ONNX export checked
against torch with onnxruntime on an evaluation picture.

``model/model.safetensors`` and ``model/torchvision.json`` (builder, keyword arguments, classes in output
order, preprocessing, the ONNX check) are what :mod:`ftrecipe_vision.saving` writes; the model card shows
:meth:`Architecture.snippet`, which a test runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ftrecipe_vision.classification.architecture import logits_of
from ftrecipe_vision.onnx_export import export_onnx, onnx_max_difference
from ftrecipe_vision.saving import save_torchvision

if TYPE_CHECKING:
    from ftrecipe.plugin import ModalityTask as ImageClassificationTask

ONNX_FILE = "model.onnx"
ONNX_TOLERANCE = 1e-3
"""Largest difference between onnxruntime's logits and torch's that passes without a warning (float32 kernels
differ in summation order: about 1e-5 is usual)."""


class Logits(nn.Module):
    """The classifier with its main output only (GoogLeNet and Inception return a tuple while training)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(pixel_values))


def plain_model(model: nn.Module) -> nn.Module:
    """LoRA adapters merged into the weights they adapt (the saved model is one torchvision state dict)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    return model.to("cpu", torch.float32).eval()


def example_input(task: ImageClassificationTask) -> torch.Tensor:
    """One evaluation picture (else a training one, unaugmented) as the model sees it: the ONNX check's input."""
    from ftrecipe_vision.classification.dataset import picture

    return task.prep.tensor(task.prep.fit(picture(task.example_row))).unsqueeze(0)


def save_classifier(task: ImageClassificationTask, model: nn.Module, directory: Path) -> float | None:
    """Write the model; returns onnxruntime's largest difference from torch (None without ONNX)."""
    model = plain_model(model)
    directory.mkdir(parents=True, exist_ok=True)
    architecture = task.architecture
    extra: dict[str, Any] = {**architecture.constructor(), "preprocessing": task.prep.describe(),
                             "head": {"mode": task.recipe.head.mode, "layer": task.head_name(model)}}
    difference = None
    if "onnx" in task.recipe.output.export:
        pixels = example_input(task)
        exported = Logits(model).eval()
        path = export_onnx(exported, (pixels,), directory / ONNX_FILE, input_names=["pixel_values"], output_names=["logits"],
                           dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
        difference = onnx_max_difference(path, exported, (pixels,), ["pixel_values"])
        extra["onnx"] = {"file": ONNX_FILE, "opset": 17, "input": "pixel_values", "output": "logits",
                         "max_abs_difference": difference}
        task.ctx.log(f"ONNX export: {path.name}, onnxruntime within {difference:.2e} of torch on an evaluation picture")
        if difference > ONNX_TOLERANCE:
            task.ctx.warn(f"ONNX export: onnxruntime's logits differ from torch's by up to {difference:.2e}")
    save_torchvision(model, directory, builder=architecture.builder, kwargs={"num_classes": architecture.outputs, **architecture.kwargs},
                     classes=task.labels, extra=extra)
    return difference


def card_notes(task: ImageClassificationTask) -> list[str]:
    """How to load the model and prepare a picture (the snippet is run by a test), and how it was trained."""
    prep = task.prep
    head = task.head_layer
    lines = ["## Use", "", "The weights are a torchvision `state_dict` (`model.safetensors`); `torchvision.json` lists the "
             "classes in output order.", "", "```python", task.architecture.snippet(head).rstrip(), "", "from PIL import Image",
             "from torchvision.transforms import v2", "",
             f"prepare = v2.Compose([v2.Resize({prep.resize}), v2.CenterCrop({prep.size}), v2.ToImage(),",
             f"                      v2.ToDtype(torch.float32, scale=True), v2.Normalize({list(prep.mean)}, {list(prep.std)})])",
             "logits = model(prepare(Image.open('photo.jpg').convert('RGB')).unsqueeze(0))",
             "```", "", f"Classes: {', '.join(task.labels) if len(task.labels) <= 50 else f'{len(task.labels)} (see torchvision.json)'}."]
    if task.onnx_difference is not None:
        lines += ["", f"`model.onnx` takes `pixel_values` (N x 3 x {prep.size} x {prep.size}, prepared as above) and gives "
                      f"`logits`; onnxruntime agreed with torch within {task.onnx_difference:.1e} on an evaluation picture."]
    if task.frozen_batchnorms:
        lines += ["", f"Training kept the BatchNorm statistics of the frozen layers ({len(task.frozen_batchnorms)} layers) as "
                      "pre-trained: they ran in evaluation mode."]
    lines += ["", f"Augmentation during training: {task.chain.describe()}."]
    return lines
