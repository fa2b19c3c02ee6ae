"""Registration of the image-classification modality: torchvision classifiers with a new head.

Torch-free: this module runs on every `ftrecipe validate`; the task imports torch and torchvision.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from ftrecipe.plugin import Augmentation, DatasetFormat, Metric, Modality, Problem, hookimpl
from ftrecipe_vision.classification import sections as s
from ftrecipe_vision.pretrained import is_weight_file, weights_run_check
from ftrecipe_vision.weights_table import builders, of_kind
from ftrecipe_vision.hardware import VisionHardware, check_sync_batchnorm

IMAGE_CLASSIFICATION = "image-classification"
MODALITIES = (IMAGE_CLASSIFICATION,)

STARTER = """\
# ftrecipe run image-classification.yaml
model:
  modality: image-classification
  base: resnet50               # any torchvision classification builder
  weights: IMAGENET1K_V2       # from torch's hub cache, or a local .pth / .safetensors file
  image_size: 224
freeze:
  strategy: transfer           # the backbone (and its BatchNorm statistics) frozen, the new head trains
head:
  mode: replace                # labels: the class folders' names unless listed here
data:
  format: folder               # photos/cat/*.jpg, photos/dog/*.jpg
  train: photos
  eval_fraction: 0.2
  augment:
    - {name: random_resized_crop, scale: [0.5, 1.0]}
    - {name: flip}
training:
  epochs: 5
  batch_size: 32
  learning_rate: 1.0e-3
"""


def _check(recipe) -> Iterator[Problem]:
    """Cross-field checks of the modality (what validate refuses, located at the key to change)."""
    model, freeze, head = recipe.model, recipe.freeze, recipe.head
    known = of_kind("classification")
    if model.base not in known:
        near = difflib.get_close_matches(model.base, known, n=3)
        hint = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(known)}"
        yield Problem(("model", "base"), f"'{model.base}' is not a torchvision classification model; {hint}")
        return
    if model.init == "scratch" and model.weights is not None:
        yield Problem(("model", "weights"), "init: scratch starts from random weights; drop weights or set init: pretrained")
    if model.config and model.init != "scratch":
        yield Problem(("model", "config"), "config changes the architecture, so the weights would not fit: only with init: scratch")
    if "blocks" in model.config and not model.base.startswith(("resnet", "resnext", "wide_resnet")):
        yield Problem(("model", "config", "blocks"), "blocks shortens a ResNet; this builder is not one")
    if model.init == "pretrained" and not builders()[model.base]["files"]:
        yield Problem(("model", "init"), f"torchvision has no pre-trained weights for {model.base}: use init: scratch")
    if model.base.startswith("vit_") and model.init == "pretrained" and model.image_size != 224:
        yield Problem(("model", "image_size"), "torchvision's ViT weights are for 224-pixel images: image_size: 224")
    if freeze.strategy == "qlora":
        yield Problem(("freeze", "strategy"), "torchvision classifiers train in full precision; use strategy lora")
    if freeze.strategy == "transfer" and model.init == "scratch":
        yield Problem(("freeze", "strategy"), "transfer freezes a backbone that was never trained (init: scratch); use full")
    if head.mode == "keep" and model.init == "scratch":
        yield Problem(("head", "mode"), "a model from scratch has no trained head to keep: use head.mode replace")
    if head.mode == "keep" and model.weights is not None and is_weight_file(model.weights):
        yield Problem(("head", "mode"), "keep uses the classes of a torchvision weights entry; a weights file has no "
                                        "class names: use head.mode replace")
    if recipe.output.save == "adapter":
        yield Problem(("output", "save"), "a torchvision model is saved as one state dict (LoRA merged): use save: merged")


@hookimpl
def ftrecipe_modalities():
    return Modality(
        name=IMAGE_CLASSIFICATION,
        section=s.ImageClassificationModel,
        task="ftrecipe_vision.classification.task:ImageClassificationTask",
        description="Image classification: a torchvision model (ResNet, EfficientNet, ViT, ...) with a head for your labels.",
        default_metrics=("accuracy", "top5_accuracy", "f1"),
        starter_recipe=STARTER,
        checks=(_check, check_sync_batchnorm),
        run_checks=(weights_run_check,),
        sections={"head": s.ClassificationHead, "output": s.ClassificationOutput, "hardware": VisionHardware},
        ignores={
            "model.revision": "torchvision weights are named by model.weights",
            "model.dtype": "torchvision weights load in float32 (hardware.precision sets mixed precision)",
            "model.quantization": "torchvision classifiers train in full precision",
            "model.trust_remote_code": "torchvision builds its models from its own code",
            "training.gradient_checkpointing": "torchvision's classifiers have no gradient checkpointing",
            "training.compile": "torchvision keeps its stages in nn.Sequential, which the runner does not compile",
        },
    )


@hookimpl
def ftrecipe_dataset_formats():
    reader = "ftrecipe_vision.classification.readers:"
    folders = {"data.columns": "the label of a picture is its folder's name"}
    return [
        DatasetFormat("folder", MODALITIES, s.FolderData, reader + "read_folder",
                      "A folder per class (torchvision's ImageFolder).", ignores=folders, required_paths=("train", "eval")),
        DatasetFormat("imagefolder", MODALITIES, s.ImageFolderData, reader + "read_imagefolder",
                      "Hugging Face datasets' imagefolder layout, read locally.", required_paths=("train", "eval")),
        DatasetFormat("manifest", MODALITIES, s.ManifestData, reader + "read_manifest",
                      "CSV/JSONL manifest of image paths and labels.", required_paths=("train", "eval")),
        DatasetFormat("synthetic", MODALITIES, s.SyntheticShapesData, reader + "read_synthetic",
                      "Circles, squares and triangles drawn offline (demo, tests).",
                      ignores={"data.train": "the pictures are drawn (train_size)", "data.eval": "the pictures are drawn (eval_size)",
                               "data.eval_fraction": "evaluation pictures are drawn apart (eval_size)",
                               "data.columns": "the drawn pictures have fixed columns"}),
    ]


@hookimpl
def ftrecipe_augmentations():
    fn = "ftrecipe_vision.classification.augment:"
    return [
        Augmentation("random_resized_crop", MODALITIES, s.RandomResizedCropAugmentation, fn + "random_resized_crop",
                     "A random part of the picture, resized (RandomResizedCrop)."),
        Augmentation("flip", MODALITIES, s.FlipAugmentation, fn + "flip", "Left-right (or up-down) mirror."),
        Augmentation("color_jitter", MODALITIES, s.ColorJitterAugmentation, fn + "color_jitter",
                     "Brightness, contrast, saturation and hue jitter."),
        Augmentation("rotation", MODALITIES, s.RotationAugmentation, fn + "rotation", "A random turn."),
    ]


@hookimpl
def ftrecipe_metrics():
    load = "ftrecipe_vision.classification.metrics:"
    return [
        Metric("accuracy", MODALITIES, load + "load_accuracy", description="Share of pictures whose top class is right."),
        Metric("top5_accuracy", MODALITIES, load + "load_top5_accuracy",
               description="Share whose right class is among the five highest scores (more than 5 classes only)."),
        Metric("f1", MODALITIES, load + "load_f1", description="Macro-averaged F1 over the classes."),
    ]
