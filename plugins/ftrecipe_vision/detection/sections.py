"""Recipe sections of the object-detection modality (torch-free: imported by every `ftrecipe validate`).

The shared sections are narrowed to what a torchvision Faster R-CNN can honour, so a recipe asking for
something it cannot do (LoRA on the detector, keeping COCO's 91-class head for new data) is refused at
its line by `ftrecipe validate` rather than ignored at run time.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from ftrecipe.plugin import LOCAL_PATH, AugmentationSection, DataSection, FreezeSection, HeadSection, ModelSection, OutputSection

Fraction = Annotated[float, Field(ge=0, le=1)]

BASES = ("fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2")
"""torchvision's Faster R-CNN builders a recipe may name (v1, and v2 of "Benchmarking Detection Transfer Learning with ViTs")."""


class DetectionModel(ModelSection):
    """A torchvision Faster R-CNN (ResNet-50 FPN, v1 or v2) whose box predictor is replaced for the recipe's classes.

    ``model.config`` holds keyword arguments of torchvision's ``FasterRCNN`` (``min_size``, ``max_size``,
    ``rpn_post_nms_top_n_train``, ``box_batch_size_per_image``, ...), passed to the builder as they are
    and written into the saved model's constructor call. With ``init: scratch`` and the v1 base it may also
    shrink the architecture, still built from torchvision's own parts: ``backbone`` (``resnet10``,
    ``resnet18``, ``resnet34``, ``resnet50``), ``fpn_channels`` and ``representation_size`` (the box
    head's width); the offline demo trains such a model on a CPU.
    """

    modality: Literal["object-detection"]
    base: Literal[BASES]  # type: ignore[valid-type]
    """torchvision's builder: ``fasterrcnn_resnet50_fpn`` (v1) or ``fasterrcnn_resnet50_fpn_v2``."""
    weights: Annotated[str | None, LOCAL_PATH] = None
    """With ``init: pretrained`` (``DEFAULT`` when omitted): a torchvision weights name of the base (``COCO_V1``, ``DEFAULT``), read from
    torch's hub cache, or a local ``.pth`` / ``.safetensors`` file with the base's state dict (91 COCO classes
    or any other count: the box predictor is replaced anyway)."""


class DetectionHead(HeadSection):
    """``replace`` (the only mode): a new ``FastRCNNPredictor`` for ``labels`` plus the background class.
    Without ``labels`` the data's classes are taken; with them, boxes of the data's other classes are
    dropped (and counted in the data report)."""

    mode: Literal["replace"] = "replace"
    labels_from_data: ClassVar[bool] = True


class DetectionFreeze(FreezeSection):
    """What trains. The layer stack ``body`` is the ResNet's ``conv1, layer1, layer2, layer3, layer4``; the
    head is the FPN, the RPN and the box heads.

    - ``strategy: transfer`` freezes the body; ``unfreeze_top: N`` trains its last N stages, exactly
      torchvision's ``trainable_backbone_layers=N`` (3 is torchvision's own fine-tuning default);
    - ``strategy: partial`` freezes ``freeze`` globs and ``freeze_layers`` (``{first: 2}``: conv1 and layer1);
    - ``strategy: full`` trains everything.

    With pre-trained weights the body's BatchNorm layers are torchvision's ``FrozenBatchNorm2d`` (as
    torchvision's v1 builder makes them; v2 is converted the same way): statistics and affine terms stay
    as trained whatever the strategy, because detection batches are too small to estimate them.
    """

    strategy: Literal["full", "transfer", "partial"] = "full"


class DetectionOutput(OutputSection):
    """Besides ``model/model.safetensors``: exports of the trained detector."""

    export: list[Literal["onnx"]] = Field(default_factory=list)
    """``onnx``: ``model/model.onnx`` (opset 17, images as a list of one CHW float tensor), checked against torch on an evaluation image."""


# -- data ---------------------------------------------------------------------------------------------

class DetectionData(DataSection):
    """Options every detection format shares."""

    min_box_size: Annotated[float, Field(ge=0)] = 1.0
    """Boxes narrower or lower than this many pixels are of zero area (and bad)."""
    tolerance: Annotated[float, Field(ge=0)] = 2.0
    """How many pixels a box may poke outside its image before it counts as outside (it is then clamped)."""


class CocoData(DetectionData):
    """COCO JSON (``instances_*.json``): ``train`` / ``eval`` are JSON files, ``images`` the folder their
    ``file_name`` entries are in. Categories become the classes in id order; ``iscrowd`` boxes are left out."""

    format: Literal["coco"]
    images: Annotated[str, LOCAL_PATH]
    """The folder holding the images the JSON files name, relative to the recipe."""


class VocData(DetectionData):
    """Pascal VOC XML, one file per image (``<object><name>cat</name><bndbox><xmin>...``), as the Oxford-IIIT
    Pet head boxes are published: ``train`` / ``eval`` are folders of XML files (or one folder, held out by
    ``eval_fraction``); each XML's ``<filename>`` is looked up in ``images`` (the XML's folder when omitted)."""

    format: Literal["voc"]
    images: Annotated[str | None, LOCAL_PATH] = None
    """The folder of the images, relative to the recipe; the XML files' own folder when omitted."""
    classes: list[str] | None = None
    """The class names (their order is the label ids); an object of another name is a bad box. Omitted:
    every name found, sorted."""


class YoloTxtData(DetectionData):
    """YOLO txt labels (``class cx cy w h`` per line, fractions of the image): ``train`` / ``eval`` are image
    folders, each image's label file under the sibling ``labels`` folder (Ultralytics' layout) or beside it.
    An image without a label file is a background image."""

    format: Literal["yolo"]
    names: list[str] = Field(min_length=1)
    """The class names, in class-id order."""


class SyntheticDetectionData(DataSection):
    """Circles, squares and triangles drawn on textured backgrounds with their boxes (the offline demo)."""

    format: Literal["synthetic"]
    train_size: Annotated[int, Field(ge=2, le=5000)] = 120
    eval_size: Annotated[int, Field(ge=2, le=2000)] = 32
    image_size: Annotated[int, Field(ge=32, le=1024)] = 128
    """Side of the drawn images, pixels."""
    classes: list[Literal["circle", "square", "triangle"]] = Field(default_factory=lambda: ["circle", "square", "triangle"])
    max_objects: Annotated[int, Field(ge=1, le=20)] = 3


# -- augmentations --------------------------------------------------------------------------------------

class FlipAugmentation(AugmentationSection):
    """Left-right flip with probability ``p`` (boxes flipped with the image)."""

    name: Literal["flip"]
    p: Fraction = 0.5


class ScaleAugmentation(AugmentationSection):
    """Zoom by a factor drawn from ``range`` on a canvas of the same size: out (padded with grey) or in
    (a random crop); boxes follow, and those left under ``data.min_box_size`` are dropped. The model's own
    resize to ``min_size`` would undo a plain resize, so the objects' size is what changes."""

    name: Literal["scale"]
    range: tuple[Annotated[float, Field(gt=0.1, le=4)], Annotated[float, Field(gt=0.1, le=4)]] = (0.75, 1.25)


class ColorAugmentation(AugmentationSection):
    """Brightness, contrast and saturation each scaled by a factor within ``1 +/- strength``."""

    name: Literal["color"]
    strength: Fraction = 0.3
