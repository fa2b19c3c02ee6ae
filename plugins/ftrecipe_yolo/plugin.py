"""Registration of the YOLO plugin: object detection fine-tuned through Ultralytics' own trainer.

Torch-free and Ultralytics-free: this module runs on every `ftrecipe validate`, with or without the
`ftrecipe[yolo]` extra installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ftrecipe.plugin import Augmentation, DatasetFormat, Modality, Problem, hookimpl
from ftrecipe_yolo import sections as s

YOLO = "yolo"


def _check(recipe) -> list[Problem]:
    problems = []
    base = recipe.model.base
    if recipe.model.init == "pretrained" and base.endswith((".yaml", ".yml")):
        problems.append(Problem(("model", "init"), "a model YAML has no weights: set init: scratch, or name a .pt file"))
    if recipe.freeze.strategy == "transfer" and recipe.model.init == "scratch":
        problems.append(Problem(("freeze", "strategy"), "transfer freezes a backbone that was never trained (init: scratch)"))
    return problems


def _weights_here(recipe, base_dir: Path) -> list[Problem]:
    """Before torch is imported: pre-trained weights named by a .pt file are on this machine."""
    base = recipe.model.base
    if recipe.model.init != "pretrained" or not base.endswith(".pt") or (base_dir / Path(base).expanduser()).is_file():
        return []
    return [Problem(("model", "base"), s.missing_weights(base))]


@hookimpl
def ftrecipe_modalities():
    return Modality(
        name=YOLO,
        section=s.YoloModel,
        task="ftrecipe_yolo.task:YoloTask",
        description="Object detection: an Ultralytics YOLO fine-tuned on new objects (needs ftrecipe[yolo]).",
        starter_recipe=resources.files("ftrecipe_yolo").joinpath("starters", "yolo.yaml").read_text(encoding="utf-8"),
        checks=(_check,),
        run_checks=(_weights_here,),
        sections={"freeze": s.YoloFreeze, "head": s.YoloHead, "training": s.YoloTraining, "hardware": s.YoloHardware,
                  "output": s.YoloOutput},
        ignores={
            "model.revision": "Ultralytics weights are local files",
            "model.config": "the architecture is the model YAML's (model.base)",
            "model.dtype": "Ultralytics trains in float32 (hardware.precision sets mixed precision)",
            "model.quantization": "Ultralytics trains unquantised weights",
            "model.trust_remote_code": "Ultralytics loads no remote code",
            "head.num_labels": "the classes are head.labels (or the dataset's names)",
            "freeze.lora": "LoRA is not available for detectors",
            "freeze.train": "name what stays frozen (freeze, freeze_layers); everything else trains",
            "training.compile": "Ultralytics' trainer runs its own model; it is not compiled",
            "training.gradient_accumulation": "Ultralytics accumulates up to training.nominal_batch images",
            "training.adam_betas": "Ultralytics sets beta1 from its momentum (0.937) and beta2 = 0.999",
            "training.warmup_steps": "warm-up is counted in epochs: training.warmup_epochs",
            "training.warmup_ratio": "warm-up is counted in epochs: training.warmup_epochs",
            "training.max_grad_norm": "Ultralytics clips gradients at a norm of 10",
            "training.eval_every": "Ultralytics validates after every epoch",
            "training.checkpoint_every": "a checkpoint is written after every epoch",
            "training.gradient_checkpointing": "not available in Ultralytics' detectors",
            "hardware.strategy": "one device (hardware.devices: 1)",
            "hardware.zero_stage": "one device (hardware.devices: 1)",
            "hardware.nodes": "one device (hardware.devices: 1)",
            "evaluation.metrics": "Ultralytics' validator reports mAP50, mAP50-95, precision and recall",
            "evaluation.samples": "the validator's metrics are the evaluation",
            "output.save": "best.pt and last.pt are always written (output.export adds formats)",
        },
    )


@hookimpl
def ftrecipe_dataset_formats():
    reader = "ftrecipe_yolo.datasets:"
    split_keys = {"data.train": "the splits are the data YAML's train and val", "data.eval": "the splits are the data YAML's train and val",
                  "data.columns": "YOLO label files have fixed columns"}
    return [
        DatasetFormat("yolo", (YOLO,), s.YoloData, reader + "read_yolo", "An Ultralytics data YAML with YOLO-format labels.",
                      ignores=split_keys, required_paths=("yaml",)),
        DatasetFormat("coco", (YOLO,), s.CocoData, reader + "read_coco", "COCO JSON annotations, converted on load.",
                      ignores={"data.columns": "COCO JSON has fixed fields"}, required_paths=("images", "train", "eval")),
        DatasetFormat("synthetic", (YOLO,), s.SyntheticDetectionData, reader + "read_synthetic",
                      "Shapes on textured backgrounds with their boxes (offline demo).",
                      ignores={"data.train": "the images are drawn (train_size)", "data.eval": "the images are drawn (eval_size)",
                               "data.eval_fraction": "evaluation images are drawn apart (eval_size)",
                               "data.columns": "the drawn labels have fixed columns"}),
    ]


@hookimpl
def ftrecipe_augmentations():
    fn = "ftrecipe_yolo.augment:"
    return [
        Augmentation("flip", (YOLO,), s.FlipAugmentation, fn + "flip", "Left-right (and up-down) flips."),
        Augmentation("hsv", (YOLO,), s.HsvAugmentation, fn + "hsv", "Hue, saturation and value jitter."),
        Augmentation("scale", (YOLO,), s.ScaleAugmentation, fn + "scale", "Random zoom."),
        Augmentation("translate", (YOLO,), s.TranslateAugmentation, fn + "translate", "Random shift."),
        Augmentation("mosaic", (YOLO,), s.MosaicAugmentation, fn + "mosaic", "Four images tiled into one."),
        Augmentation("mixup", (YOLO,), s.MixupAugmentation, fn + "mixup", "Two images blended."),
    ]
