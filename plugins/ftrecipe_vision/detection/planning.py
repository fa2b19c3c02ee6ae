"""What `ftrecipe plan` asks of the detection task: the Faster R-CNN on meta, one training forward, the data counted.

torchvision's detectors cannot run their whole training forward on meta tensors: the RPN picks proposals
by score (top-k, NMS and ``.item()`` calls on values) and the box head samples them against the targets.
So the planned forward runs what has a fixed shape whatever the values are, at the largest batch the run
can see: the model's own transform (normalise, resize, pad), the backbone and FPN, the RPN head on every
level with a dense objectness and box loss over all anchors (the run samples ``rpn_batch_size_per_image``
of them: an upper bound), RoIAlign on ``box_batch_size_per_image`` regions per image (the number the run
samples once the RPN gives enough proposals), the box head and predictor, and their loss. Left out, and
small next to the rest: anchor generation, proposal selection and NMS, target matching.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ftrecipe.plugin import DataGuidance, PlanData
from ftrecipe_vision.detection import model as detector
from ftrecipe_vision.detection.readers import SEED_GUIDANCE

if TYPE_CHECKING:  # the plan is handed the task; it never imports the task module
    from ftrecipe.plugin import ModalityTask as DetectionTask

GUIDANCE = DataGuidance(minimum=SEED_GUIDANCE, unit="images", source="the seed: a detector needs about 100 labelled images")
PAD = 32
"""torchvision's transform pads a batch to a multiple of this (``size_divisible``)."""


def resized(width: int, height: int, min_size: int, max_size: int) -> tuple[int, int]:
    """The (height, width) torchvision's ``GeneralizedRCNNTransform`` resizes an image to."""
    scale = min(min_size / min(width, height), max_size / max(width, height))
    return math.floor(height * scale), math.floor(width * scale)


class DetectionPlan:
    """The detection task's plan hooks (``ModalityTask.planner``)."""

    def __init__(self, task: DetectionTask) -> None:
        self.task = task

    def classes(self) -> list[str]:
        """``head.labels``, else the data's classes; without data one class (the plan says so)."""
        task, head = self.task, self.task.recipe.head
        splits = task.plan_splits()
        if splits is not None:
            from ftrecipe_vision.detection.task import head_classes

            return head_classes(task.recipe, splits.report.details["classes"])
        if head.labels:
            return list(head.labels)
        task.ctx.warn("ftrecipe plan: the data is not here, so the box predictor is planned for one class")
        return ["object"]

    def model(self) -> torch.nn.Module:
        return detector.plan_model(self.task.recipe, self.classes(), smoke=self.task.ctx.smoke)

    def checkpoint_units(self, model: torch.nn.Module) -> list[str]:
        return []  # torchvision's detectors have no gradient checkpointing (the recipe key is ignored)

    def batch_shape(self) -> tuple[int, int]:
        """(height, width) of the padded batch: the data's largest resized sides, or ``max_size`` square without data."""
        task = self.task
        arch = detector.architecture(task.recipe, self.classes(), smoke=task.ctx.smoke)
        low, high = arch.setting("min_size"), arch.setting("max_size")
        splits = task.plan_splits()
        sizes = [row["size"] for row in (splits.train if splits is not None else ())]
        if sizes:
            shapes = [resized(w, h, low, high) for w, h in sizes]
            height, width = max(s[0] for s in shapes), max(s[1] for s in shapes)
        else:
            height = width = high
        return math.ceil(height / PAD) * PAD, math.ceil(width / PAD) * PAD

    def forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        """The shape-fixed part of one training forward, and its loss (see the module docstring), run as the
        model's own call (its ``forward`` stood in for this once) so that the plan's hooks on the model see it."""
        model.forward = lambda: self._dense_forward(model, batch_size)  # an instance attribute: the class's stays
        try:
            return model()
        finally:
            del model.forward

    def _dense_forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        task = self.task
        height, width = self.batch_shape()
        parameter = next(model.parameters())
        images = torch.empty(batch_size, 3, height, width, dtype=parameter.dtype, device="meta")
        images = (images - images.mean()) / (images.std() + 1)  # the transform's normalisation
        features = model.backbone(images)
        levels = list(features.values())
        objectness, deltas = model.rpn.head(levels)
        loss = torch.zeros((), device="meta")
        for scores, boxes in zip(objectness, deltas, strict=True):
            loss = loss + F.binary_cross_entropy_with_logits(scores, torch.empty_like(scores)) + F.smooth_l1_loss(boxes, torch.empty_like(boxes))
        arch = detector.architecture(task.recipe, self.classes(), smoke=task.ctx.smoke)
        regions = arch.setting("box_batch_size_per_image") * batch_size
        rois = torch.empty(regions, 5, dtype=parameter.dtype, device="meta")
        from torchvision.ops import roi_align

        pooled = roi_align(levels[0], rois, output_size=7, spatial_scale=levels[0].shape[-1] / width, sampling_ratio=2)
        logits, box_deltas = model.roi_heads.box_predictor(model.roi_heads.box_head(pooled))
        labels = torch.empty(regions, dtype=torch.long, device="meta")
        loss = loss + F.cross_entropy(logits, labels) + F.smooth_l1_loss(box_deltas, torch.empty_like(box_deltas))
        return loss

    def data(self) -> PlanData:
        """Images per split, boxes per head class in the training split, and the seed's guidance."""
        task = self.task
        splits = task.plan_splits()
        if splits is None:
            return PlanData(unavailable=task.plan_unavailable, guidance=GUIDANCE)
        report, classes = splits.report, self.classes()
        boxes = report.details.get("train_boxes_per_class", {})
        repeated = f"{len(splits.train)} training images: "  # the reader's guidance warning: the plan states it from GUIDANCE
        warnings = [warning for warning in report.warnings if not warning.startswith(repeated)]
        if not splits.eval:
            warnings.append("no evaluation images: set data.eval or an eval_fraction above 0 to measure mAP")
        train = {row["where"] for row in splits.train}
        overlap = sum(1 for row in splits.eval or () if row["where"] in train)
        return PlanData(train_examples=report.train_examples, eval_examples=report.eval_examples,
                        amount={"images": float(report.train_examples)}, balance={name: int(boxes.get(name, 0)) for name in classes},
                        guidance=GUIDANCE, overlap=overlap, warnings=warnings)
