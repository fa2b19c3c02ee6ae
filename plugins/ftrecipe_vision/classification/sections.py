"""Recipe sections of the image-classification modality (torch-free: imported by every `ftrecipe validate`).

The model is any torchvision classification builder (``model.base: resnet50``) with optional weights;
the data is a folder per class, a manifest, a Hugging Face ``imagefolder`` layout, or drawn shapes; the
augmentations are torchvision.transforms.v2 steps, each drawn per example from the run's seed.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ftrecipe.plugin import LOCAL_PATH, AugmentationSection, DataSection, HeadSection, ModelSection, OutputSection

MIN_IMAGES_PER_CLASS = 10
"""Training images per class below which the data report warns. Google's AutoML Vision (Vertex AI) guide,
"Prepare image training data": "The minimum per label is 10 ... We recommend about 1000 training images per
label"; Keras' transfer-learning guide fine-tunes its cats-vs-dogs example with about a thousand per class.
Ten is the floor below which a label cannot be learnt reliably even from pre-trained features."""

RECOMMENDED_IMAGES_PER_CLASS = 100
"""Quoted with the warning: what a practitioner expects for a usable fine-tuned classifier (AutoML's
guidance is 100 to 1000 per label)."""


class ImageClassificationModel(ModelSection):
    """A torchvision classification model: ``base`` is the builder (``resnet50``, ``efficientnet_b0``,
    ``vit_b_16``, ... see ``torchvision.models.list_models()``), ``weights`` its pre-trained weights.

    With ``init: scratch`` the architecture starts random; ``config`` then passes keyword arguments to the
    builder (``dropout: 0.3``, ``zero_init_residual: true``) and, for the ResNet family, ``blocks: N``
    builds a shorter ResNet of N blocks per stage with torchvision's ``ResNet`` class. ``--smoke`` builds
    such a one-block ResNet for ResNets (other families: the builder's own architecture), random, no weights.
    """

    modality: Literal["image-classification"]
    weights: Annotated[str | None, LOCAL_PATH] = None
    """torchvision weights of ``base``: a name (``DEFAULT``, ``IMAGENET1K_V2``), read from torch's hub cache,
    or a local ``.pth`` / ``.safetensors`` state dict. Omitted with ``init: pretrained``: ``DEFAULT``."""
    image_size: Annotated[int, Field(ge=16, le=1024)] = 224
    """Side of the square images the model trains and is evaluated on (ImageNet weights: 224)."""

    def weights_spec(self) -> str | None:
        """The weights this run loads: ``weights`` (``DEFAULT`` when omitted), or None from scratch."""
        return (self.weights or "DEFAULT") if self.init == "pretrained" else None


class ClassificationHead(HeadSection):
    """``replace`` (the default) puts a new last layer for ``labels`` in place of the model's (resnet ``fc``,
    ``classifier[-1]``, ``heads.head``); ``append`` keeps it and adds a layer from its outputs to ``labels``;
    ``keep`` keeps the weights' own classes (ImageNet's 1000), which the data's labels must name.
    Without ``labels`` a new head takes the data's classes (folder names, sorted)."""

    mode: Literal["keep", "replace", "append"] = "replace"
    labels_from_data: ClassVar[bool] = True


class ClassificationOutput(OutputSection):
    """Besides ``model/model.safetensors`` (a torchvision state dict): exports of the trained model."""

    export: list[Literal["onnx"]] = Field(default_factory=list)
    """``onnx``: ``model/model.onnx`` (opset 17, dynamic batch), checked against torch with onnxruntime on an
    evaluation image (the difference is in ``model/torchvision.json``). The same key as object-detection's and
    YOLO's."""


# ----------------------------------------------------------------------------- data


class ImageData(DataSection):
    """Options every image format shares."""

    min_size: Annotated[int, Field(ge=1)] = 32
    """Images whose shorter side is below this many pixels are too small to learn from: reported and
    skipped (``on_error: skip``) or fatal (``fail``), like unreadable ones."""


class FolderData(ImageData):
    """torchvision's ``ImageFolder`` layout: ``train`` is a folder holding one folder per class
    (``cat/``, ``dog/``), its pictures at any depth below it; ``eval`` the same, or ``eval_fraction``
    of train is held out. Files beside the class folders (a README, a licence) are left alone."""

    format: Literal["folder"]


class ImageFolderData(ImageData):
    """Hugging Face ``datasets``' ``imagefolder`` layout, read locally: ``train`` is the dataset's folder.
    Split folders (``train/``, ``validation/`` or ``val``/``valid``/``dev``, ``test/``) are the splits (the
    evaluation split is validation, else test, unless ``data.eval`` names one); the label of a picture is its
    folder's name, or a ``metadata.csv`` / ``metadata.jsonl`` (``file_name`` and a ``label`` column, see
    ``columns``) names it. Without split folders, class folders sit directly in ``train``."""

    format: Literal["imagefolder"]


class ManifestData(ImageData):
    """A CSV / TSV / JSONL / Parquet manifest: one row per picture with its path and label. Canonical
    ``columns``: ``image`` and ``label`` (guessed from ``path``, ``file``, ``file_name``, ``filepath``;
    ``class``, ``category``). Relative paths resolve against the manifest's folder."""

    format: Literal["manifest"]


class SyntheticShapesData(ImageData):
    """Circles, squares and triangles on striped, noisy backgrounds (``ftrecipe.plugin.draw_shapes``): the
    class is the shape. Drawn from the recipe's seed, offline; for the demo and tests."""

    format: Literal["synthetic"]
    train_size: Annotated[int, Field(ge=1, le=100_000)] = 600
    eval_size: Annotated[int, Field(ge=1, le=10_000)] = 90
    size: Annotated[int, Field(ge=16, le=512)] = 64
    """Side of the drawn pictures in pixels."""
    classes: list[Literal["circle", "square", "triangle"]] = Field(default_factory=lambda: ["circle", "square", "triangle"],
                                                                   min_length=2)
    """The shapes drawn; each is a class."""
    scale: tuple[Annotated[float, Field(gt=0, le=0.5)], Annotated[float, Field(gt=0, le=0.5)]] = (0.15, 0.35)
    """Radius of a shape as a fraction of the picture's side: [smallest, largest]."""
    min_size: Annotated[int, Field(ge=1)] = 16

    @model_validator(mode="after")
    def _distinct(self) -> SyntheticShapesData:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes repeat")
        if self.scale[0] > self.scale[1]:
            raise ValueError("scale is [smallest, largest]")
        return self


# ----------------------------------------------------------------------------- augmentations
#
# One section per torchvision.transforms.v2 step; its fields (all but name and p) are the keyword arguments
# of the step's function in ftrecipe_vision.classification.augment.

Fraction = Annotated[float, Field(ge=0, le=1)]


class RandomResizedCropAugmentation(AugmentationSection):
    """``RandomResizedCrop``: a random part of the picture (area ``scale``, aspect ``ratio``) resized to
    ``model.image_size``, the standard ImageNet training crop. Without it, training pictures are resized
    and centre-cropped like evaluation ones."""

    name: Literal["random_resized_crop"]
    scale: tuple[Fraction, Fraction] = (0.08, 1.0)
    """Area of the crop as a fraction of the picture's: [smallest, largest]."""
    ratio: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (3 / 4, 4 / 3)
    """Aspect ratio (width / height) of the crop: [lowest, highest]."""


class FlipAugmentation(AugmentationSection):
    """``RandomHorizontalFlip``: mirror the picture left-right with probability ``p`` (0.5 is usual)."""

    name: Literal["flip"]
    p: Fraction = 0.5
    vertical: bool = False
    """Flip upside down instead (aerial, microscope and other pictures without an up)."""


class ColorJitterAugmentation(AugmentationSection):
    """``ColorJitter``: brightness, contrast and saturation factors drawn in [1 - x, 1 + x], hue shifted in [-h, h]."""

    name: Literal["color_jitter"]
    brightness: Annotated[float, Field(ge=0, le=1)] = 0.2
    contrast: Annotated[float, Field(ge=0, le=1)] = 0.2
    saturation: Annotated[float, Field(ge=0, le=1)] = 0.2
    hue: Annotated[float, Field(ge=0, le=0.5)] = 0.0


class RotationAugmentation(AugmentationSection):
    """``RandomRotation``: turn the picture by an angle drawn in [-degrees, degrees]."""

    name: Literal["rotation"]
    degrees: Annotated[float, Field(ge=0, le=180)] = 15.0
