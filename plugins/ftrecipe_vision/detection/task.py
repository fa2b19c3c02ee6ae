"""The object-detection task on the common loop: torchvision's Faster R-CNN, its loss dict summed, COCO mAP.

Batches are lists of images and target dicts (the detector resizes and pads them itself); the loss is the
sum of the four losses torchvision's model returns in train mode (RPN objectness and box regression,
box-head classification and regression). The runner owns devices, precision, checkpoints, exact resume,
Ctrl-C and DDP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ftrecipe.plugin import DataBundle, EpochIndex, EvalResult, ModalityTask, ModelAnatomy, RecipeRuntimeError
from ftrecipe_vision.detection import model as detector
from ftrecipe_vision.detection.data import DetectionDataset, collate, picture, steps_of
from ftrecipe_vision.hardware import synchronise_batchnorm

SAMPLE_IMAGES = 16
"""At most this many evaluation images are drawn with their predictions into samples/."""
SCORE_SHOWN = 0.3
"""Detections below this score are left out of the samples (all count for mAP)."""


def head_classes(recipe: Any, data_classes: list[str]) -> list[str]:
    """The classes the new predictor detects: ``head.labels`` (each one of the data's) or the data's own."""
    labels = recipe.head.labels
    if labels is None:
        return list(data_classes)
    unknown = [label for label in labels if label not in data_classes]
    if unknown:
        raise RecipeRuntimeError(("head", "labels"), f"{', '.join(unknown)}: not among the data's classes "
                                                     f"({', '.join(data_classes)})")
    return list(labels)


def keep_classes(rows: list[dict[str, Any]], classes: list[str]) -> tuple[list[dict[str, Any]], int]:
    """Rows with only the boxes of ``classes``; and how many boxes were dropped."""
    kept, dropped = [], 0
    for row in rows:
        chosen = [i for i, label in enumerate(row["labels"]) if label in classes]
        dropped += len(row["labels"]) - len(chosen)
        kept.append({**row, "boxes": [row["boxes"][i] for i in chosen], "labels": [row["labels"][i] for i in chosen]})
    return kept, dropped


class DetectionTask(ModalityTask):
    classes: list[str]

    # -- data ----------------------------------------------------------------------------------
    def build_data(self) -> DataBundle:
        ctx, recipe = self.ctx, self.recipe
        splits = self.read_data()
        report = splits.report
        self.classes = head_classes(recipe, report.details["classes"])
        train, dropped = keep_classes(list(splits.train), self.classes)
        held, dropped_eval = keep_classes(list(splits.eval or []), self.classes)
        if dropped or dropped_eval:
            report.details["boxes_of_other_classes_dropped"] = dropped + dropped_eval
        report.details["head_classes"] = list(self.classes)
        steps = steps_of(recipe.data.augment, ctx.registry, recipe.model.modality)
        if steps:
            report.details["augmentation"] = ", ".join(f"{s.name}(p={s.p:g})" for s in steps)
        train_set = DetectionDataset(train, self.classes, steps=steps, seed=ctx.seed)
        self.eval_rows = held
        eval_set = DetectionDataset(held, self.classes) if held else None
        if ctx.save_augmented and ctx.is_main_process:
            self._save_augmented(train_set, ctx.save_augmented)
        return DataBundle(train=train_set, eval=eval_set, collate=collate, report=report, files=splits.files)

    def _save_augmented(self, dataset: DetectionDataset, count: int) -> None:
        """N training images as epoch 1 sees them, boxes drawn, for people to check the augmentation."""
        from ftrecipe_vision.detection.drawing import draw

        out = self.ctx.output_dir / "augmented"
        out.mkdir(parents=True, exist_ok=True)
        for i in range(min(count, len(dataset))):
            image, target = dataset[EpochIndex(i, 0)]
            pixels = (image * 255).round().byte().permute(1, 2, 0).numpy()
            truth = {"boxes": target["boxes"].tolist()}
            none = {"boxes": [], "labels": [], "scores": []}
            draw(pixels, truth, none, self.classes).save(out / f"aug_{i:04d}.png")
        self.ctx.log(f"wrote {min(count, len(dataset))} augmented images to {out}")

    def batch_counts(self, batch: dict[str, list[Any]]) -> tuple[int, int]:
        return len(batch["images"]), 0

    # -- model and loss ------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        ctx = self.ctx
        self.architecture = detector.architecture(self.recipe, self.classes, smoke=ctx.smoke)
        model = detector.build(self.recipe, self.classes, smoke=ctx.smoke, base_dir=ctx.base_dir, log=ctx.log)
        if ctx.smoke:
            ctx.log(f"--smoke: a tiny randomly initialised {self.architecture.describe()}")
        return model

    def anatomy(self, model: torch.nn.Module) -> ModelAnatomy:
        return detector.anatomy(model)

    def apply_speedups(self, model: torch.nn.Module) -> dict[str, Any]:
        """Not a speed switch: ``hardware.sync_batchnorm`` converts the trainable BatchNorm layers (a
        pre-trained v1 body's are FrozenBatchNorm2d, which have no statistics to share)."""
        synchronise_batchnorm(model, self.ctx)
        return {}

    def compute_loss(self, model: torch.nn.Module, batch: dict[str, list[Any]]) -> torch.Tensor:
        """The sum of torchvision's loss dict (the common loop logs one loss; the parts are not logged separately)."""
        losses = model(batch["images"], batch["targets"])
        return sum(losses.values())

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        from ftrecipe_vision.detection.drawing import draw, grid
        from ftrecipe_vision.detection.metrics import coco_map

        dataset = data.eval
        count = min(len(dataset), max_examples) if max_examples else len(dataset)
        device = next(model.parameters()).device
        size = self.recipe.training.batch_size
        truths, found = [], []
        for start in range(0, count, size):
            items = [dataset[i] for i in range(start, min(start + size, count))]
            with torch.no_grad():
                outputs = model([image.to(device) for image, _ in items])
            for (image, target), output in zip(items, outputs, strict=True):
                truths.append({"size": [image.shape[-1], image.shape[-2]], "boxes": target["boxes"].tolist(),
                               "labels": target["labels"].tolist()})
                found.append({key: output[key].detach().float().cpu().numpy() for key in ("boxes", "labels", "scores")})
        metrics = coco_map(truths, found, self.classes)
        shown = min(count, self.recipe.evaluation.samples, SAMPLE_IMAGES)
        samples = [self._sample(i, truths[i], found[i]) for i in range(shown)]
        images = {}
        if shown:
            pictures = [draw(picture(dataset.rows[i]).permute(1, 2, 0).numpy(), truths[i], found[i], self.classes,
                             threshold=SCORE_SHOWN) for i in range(shown)]
            images["predictions"] = grid(pictures)
        return EvalResult(metrics, samples=samples, images=images)

    def _sample(self, index: int, truth: dict[str, Any], found: dict[str, np.ndarray]) -> dict[str, Any]:
        name = lambda label: self.classes[int(label) - 1]  # noqa: E731
        return {"image": self.eval_rows[index]["where"],
                "truth": [[name(label), [round(v, 1) for v in box]] for box, label in zip(truth["boxes"], truth["labels"], strict=True)],
                "predicted": [[name(label), round(float(score), 3), [round(float(v), 1) for v in box]]
                              for box, label, score in zip(found["boxes"], found["labels"], found["scores"], strict=True)
                              if score >= SCORE_SHOWN]}

    # -- saving --------------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, directory: Path) -> None:
        from ftrecipe_vision.saving import save_torchvision

        arch = self.architecture
        builder = "FasterRCNN" if arch.small else arch.base
        save_torchvision(model, directory, builder=builder, kwargs=arch.constructor_kwargs(),
                         classes=["__background__", *self.classes], extra={"label_ids": "0 is the background; class i is classes[i]"})
        (directory / "rebuild.py").write_text(arch.snippet(str(directory.name)), encoding="utf-8")
        if "onnx" in self.recipe.output.export:
            self._export_onnx(model, directory)

    def _export_onnx(self, model: torch.nn.Module, directory: Path) -> None:
        """``model.onnx``, and the largest difference between onnxruntime's outputs and torch's on an evaluation image."""
        from ftrecipe_vision.onnx_export import export_onnx, onnx_max_difference

        rows = self.eval_rows or []
        image = (picture(rows[0]).float() / 255) if rows else torch.rand(3, 128, 128)
        path = export_onnx(model, ([image],), directory / "model.onnx", input_names=["image"],
                           output_names=["boxes", "labels", "scores"],
                           dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "detections"},
                                         "labels": {0: "detections"}, "scores": {0: "detections"}})
        difference = onnx_max_difference(path, model, ([image],), ["image"])
        self.ctx.log(f"ONNX export {path.name}: onnxruntime agrees with torch within {difference:.2g} on an evaluation image")

    def model_card_notes(self) -> list[str]:
        classes = ", ".join(f"{i + 1} {name}" for i, name in enumerate(self.classes))
        return ["## Use", "",
                f"A torchvision {self.architecture.describe()}. Rebuild it and load the weights (this is `rebuild.py`):", "",
                "```python", self.architecture.snippet().rstrip(), "```", "",
                "Call it on a list of float CHW images in 0..1: each output holds `boxes` (x1, y1, x2, y2 pixels), "
                f"`labels` and `scores`. Label ids: 0 background, {classes}."]

    def model_card_metadata(self) -> dict[str, Any]:
        return {"library_name": "torchvision", "pipeline_tag": "object-detection", "tags": ["faster-rcnn"],
                "base_model": None}  # model.base is a torchvision builder, not a Hub repository

    # -- planning (`ftrecipe plan`): the hooks live in ftrecipe_vision.detection.planning
    planner = "ftrecipe_vision.detection.planning:DetectionPlan"
