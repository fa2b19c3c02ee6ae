"""Recipe sections of the YOLO plugin (torch-free: imported by every `ftrecipe validate`).

The shared sections are narrowed to what Ultralytics' trainer can honour, so a recipe asking for
something it cannot do (LoRA on a detector, a cosine-with-restarts schedule) is refused at its line
by `ftrecipe validate` rather than ignored at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ftrecipe.plugin import (
    LOCAL_PATH,
    AugmentationSection,
    DataSection,
    FreezeSection,
    HardwareSection,
    HeadSection,
    ModelSection,
    OutputSection,
    TrainingSection,
)

Fraction = Annotated[float, Field(ge=0, le=1)]

SMOKE_IMAGE_SIZE = 128
"""The largest image side of a --smoke run (model.image_size above it is lowered to it)."""


class YoloModel(ModelSection):
    """An Ultralytics detector: pre-trained weights (``.pt``, a local file) or a model YAML (from scratch)."""

    modality: Literal["yolo"]
    image_size: Annotated[int, Field(ge=32, le=4096)] = 640
    """Training and validation image size in pixels (a multiple of the model's stride, 32)."""


class YoloFreeze(FreezeSection):
    """What trains. Blocks are named as in the model's YAML: ``backbone``, ``neck`` (the head section up
    to the detection layer) and ``head`` (the detection layer); layers are the YAML's rows, counted from 0.

    - ``strategy: transfer`` freezes the backbone (``unfreeze_top: N`` trains its last N layers);
    - ``strategy: partial`` freezes what ``freeze`` (block names or ``model.N`` module globs) and
      ``freeze_layers`` (``stack: backbone|neck|head``, indices within it) name;
    - ``strategy: full`` freezes nothing.

    Everything goes through Ultralytics' own ``freeze`` argument, which also keeps those layers'
    BatchNorm statistics fixed.
    """

    strategy: Literal["full", "transfer", "partial"] = "full"


class YoloHead(HeadSection):
    """``keep``: fine-tune on the weights' own classes. ``replace``: a new detection head for ``labels``
    (the dataset's names, or a subset of them: boxes of other classes are dropped), keeping backbone
    and neck weights."""

    mode: Literal["keep", "replace"] = "keep"
    labels_from_data: ClassVar[bool] = True


class YoloTraining(TrainingSection):
    """Training keys mapped onto Ultralytics' hyperparameters (shown in the run log)."""

    optimizer: Literal["adamw", "sgd"] = "adamw"
    scheduler: Literal["linear", "cosine"] = "linear"
    """Ultralytics' linear or cosine decay to ``final_lr_fraction`` of the learning rate."""
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.002
    weight_decay: Annotated[float, Field(ge=0)] = 0.0005
    warmup_epochs: Annotated[float, Field(ge=0)] = 3.0
    """Epochs of linear learning-rate and momentum warm-up."""
    final_lr_fraction: Annotated[float, Field(gt=0, le=1)] = 0.01
    """The learning rate at the last epoch, as a fraction of ``learning_rate`` (Ultralytics' ``lrf``)."""
    nominal_batch: Annotated[int, Field(ge=1)] = 64
    """Gradients are accumulated up to this many images per optimizer step (Ultralytics' ``nbs``)."""
    close_mosaic: Annotated[int, Field(ge=0)] = 10
    """Turn mosaic off for the last N epochs."""


class YoloHardware(HardwareSection):
    """One device: Ultralytics runs several GPUs in worker processes of its own, which cannot report to
    ftrecipe's progress, checkpoints and resume."""

    devices: Literal[1] = 1


class YoloOutput(OutputSection):
    """Besides ``best.pt`` and ``last.pt``: exports of the best weights."""

    export: list[Literal["onnx"]] = Field(default_factory=list)
    """Formats to export ``best.pt`` to (``onnx``: checked against the ``.pt`` on one image)."""


class YoloData(DataSection):
    """An Ultralytics data YAML (``path``, ``train``, ``val``, ``names``) with YOLO-format label files.

    Before training every image and label file is checked (missing, empty, corrupt, duplicate images;
    class ids outside ``names``; boxes outside the image or of zero area); ``on_error`` decides
    whether a bad file is skipped (and reported) or stops the run. Without a ``val`` split,
    ``eval_fraction`` of the training images is held out.
    """

    format: Literal["yolo"]
    yaml: Annotated[str, LOCAL_PATH]
    """The data YAML, relative to the recipe."""


class CocoData(DataSection):
    """COCO JSON annotations (``instances_*.json``), converted to YOLO labels on load by Ultralytics'
    converter. ``train``/``eval`` are the JSON files; images are looked up in ``images``."""

    format: Literal["coco"]
    images: Annotated[str, LOCAL_PATH]
    """The folder holding the images the JSON files name (``file_name``), relative to the recipe."""


class SyntheticDetectionData(DataSection):
    """Shapes on textured backgrounds with their boxes, drawn by the plugin (the offline demo)."""

    format: Literal["synthetic"]
    train_size: Annotated[int, Field(ge=2, le=5000)] = 96
    eval_size: Annotated[int, Field(ge=2, le=2000)] = 32
    image_size: Annotated[int, Field(ge=32, le=1024)] = 128
    """Side of the drawn images, pixels."""
    classes: list[Literal["circle", "square", "triangle"]] = Field(default_factory=lambda: ["circle", "square", "triangle"])
    max_objects: Annotated[int, Field(ge=1, le=20)] = 3


class FlipAugmentation(AugmentationSection):
    """Left-right flip with probability ``p`` (``fliplr``); ``vertical`` flips up-down as well (``flipud``)."""

    name: Literal["flip"]
    p: Fraction = 0.5
    vertical: Fraction = 0.0


class HsvAugmentation(AugmentationSection):
    """Random hue, saturation and value gains (``hsv_h``, ``hsv_s``, ``hsv_v``)."""

    name: Literal["hsv"]
    hue: Fraction = 0.015
    saturation: Fraction = 0.7
    value: Fraction = 0.4


class ScaleAugmentation(AugmentationSection):
    """Random zoom by up to +/- ``gain`` (``scale``)."""

    name: Literal["scale"]
    gain: Annotated[float, Field(ge=0, le=0.99)] = 0.5


class TranslateAugmentation(AugmentationSection):
    """Random shift by up to ``fraction`` of the image (``translate``)."""

    name: Literal["translate"]
    fraction: Annotated[float, Field(ge=0, le=0.9)] = 0.1


class MosaicAugmentation(AugmentationSection):
    """Four images tiled into one with probability ``p`` (``mosaic``; off for the last ``close_mosaic`` epochs)."""

    name: Literal["mosaic"]


class MixupAugmentation(AugmentationSection):
    """Two images blended with probability ``p`` (``mixup``)."""

    name: Literal["mixup"]
    p: Fraction = 0.1


def missing_weights(base: str) -> str:
    """What to do when the recipe's Ultralytics weights (``model.base``, a .pt file) are not on this machine."""
    return (f"'{base}' is not a local file. Ultralytics publishes its weights as GitHub release assets "
            f"(e.g. https://github.com/ultralytics/assets/releases); download the file next to the recipe, "
            f"or run with --smoke to try the recipe on a randomly initialised {Path(base).stem}")
