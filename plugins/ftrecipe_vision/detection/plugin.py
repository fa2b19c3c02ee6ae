"""Registration of the object-detection modality: torchvision's Faster R-CNN on the common loop.

Torch-free: this module runs on every `ftrecipe validate`; the task and the readers import torch,
torchvision and pycocotools when a run needs them.
"""

from __future__ import annotations

from collections.abc import Iterator

from ftrecipe.plugin import Augmentation, DatasetFormat, Modality, Problem, hookimpl
from ftrecipe_vision.detection import sections as s
from ftrecipe_vision.detection.architecture import config_problems
from ftrecipe_vision.pretrained import weights_run_check
from ftrecipe_vision.hardware import VisionHardware, check_sync_batchnorm

DETECTION = "object-detection"

STARTER = """\
# ftrecipe run detector.yaml
model:
  modality: object-detection
  base: fasterrcnn_resnet50_fpn_v2   # torchvision's Faster R-CNN (or fasterrcnn_resnet50_fpn, v1)
  weights: COCO_V1                   # from torch's hub cache, or a local .pth / .safetensors file
  config: {min_size: 512, max_size: 768}
head:
  mode: replace                      # a new box predictor for the data's classes (or head.labels)
freeze:
  strategy: transfer
  unfreeze_top: 3                    # torchvision's trainable_backbone_layers=3
data:
  format: voc                        # or coco, yolo
  train: data/annotations            # one Pascal VOC XML per image
  images: data/images
  augment:
    - name: flip
    - name: scale
training:
  epochs: 20
  batch_size: 4
  optimizer: sgd
  learning_rate: 0.01
  warmup_ratio: 0.05
"""


def _check(recipe) -> Iterator[Problem]:
    model, freeze = recipe.model, recipe.freeze
    if freeze.strategy == "transfer" and model.init == "scratch":
        yield Problem(("freeze", "strategy"), "transfer freezes a backbone that was never trained (init: scratch); use full")
    if model.init == "scratch" and model.weights is not None:
        yield Problem(("model", "weights"), "init: scratch loads no weights; drop model.weights or use init: pretrained")
    yield from config_problems(model.base, model.init, model.config)


@hookimpl
def ftrecipe_modalities():
    return Modality(
        name=DETECTION,
        section=s.DetectionModel,
        task="ftrecipe_vision.detection.task:DetectionTask",
        description="Object detection: torchvision's Faster R-CNN (ResNet-50 FPN) with a new box predictor for your classes.",
        starter_recipe=STARTER,
        checks=(_check, check_sync_batchnorm),
        run_checks=(weights_run_check,),
        sections={"freeze": s.DetectionFreeze, "head": s.DetectionHead, "output": s.DetectionOutput, "hardware": VisionHardware},
        ignores={
            "model.revision": "torchvision weights are named by model.weights",
            "model.dtype": "the detector trains in float32 (hardware.precision sets mixed precision)",
            "model.quantization": "torchvision's detectors train unquantised weights",
            "model.trust_remote_code": "torchvision builds the model; no code comes with the weights",
            "head.num_labels": "the classes are head.labels (or the data's)",
            "freeze.lora": "LoRA is not available for the detector",
            "training.compile": "compiling torchvision's detectors is not measured yet: they train eagerly",
            "training.gradient_checkpointing": "torchvision's detectors have no gradient checkpointing",
            "evaluation.metrics": "the COCO evaluation (pycocotools) reports mAP50, mAP50-95 and AP per class",
        },
    )


@hookimpl
def ftrecipe_dataset_formats():
    reader = "ftrecipe_vision.detection.readers:"
    columns = {"data.columns": "detection annotations have fixed fields"}
    return [
        DatasetFormat("coco", (DETECTION,), s.CocoData, reader + "read_coco", "COCO JSON annotations (instances_*.json).",
                      ignores=columns, required_paths=("images", "train", "eval")),
        DatasetFormat("voc", (DETECTION,), s.VocData, reader + "read_voc",
                      "Pascal VOC XML, one file per image (the Oxford-IIIT Pet head boxes' format).",
                      ignores=columns, required_paths=("images", "train", "eval")),
        DatasetFormat("yolo", (DETECTION,), s.YoloTxtData, reader + "read_yolo_txt",
                      "Image folders with YOLO txt labels (class cx cy w h, fractions).",
                      ignores=columns, required_paths=("train", "eval")),
        DatasetFormat("synthetic", (DETECTION,), s.SyntheticDetectionData, reader + "read_synthetic",
                      "Shapes on textured backgrounds with their boxes (offline demo).",
                      ignores={**columns, "data.train": "the images are drawn (train_size)", "data.eval": "the images are drawn (eval_size)",
                               "data.eval_fraction": "evaluation images are drawn apart (eval_size)",
                               "data.on_error": "drawn boxes are always valid"}),
    ]


@hookimpl
def ftrecipe_augmentations():
    fn = "ftrecipe_vision.detection.augment:"
    return [
        Augmentation("flip", (DETECTION,), s.FlipAugmentation, fn + "flip", "Left-right flip, boxes flipped."),
        Augmentation("scale", (DETECTION,), s.ScaleAugmentation, fn + "scale", "Zoom in or out on a same-size canvas, boxes following."),
        Augmentation("color", (DETECTION,), s.ColorAugmentation, fn + "color", "Brightness, contrast and saturation jitter."),
    ]

