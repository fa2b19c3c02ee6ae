"""What `ftrecipe plan` asks of the image-classification task: the classifier on the meta device (built by the
same torchvision builder, with the head for the recipe's classes), one training forward at the training
resolution with its cross-entropy, and the pictures counted per class.

Nothing is downloaded and no weights are read: the builder makes the architecture, a torchvision weights
entry knows its class count, and the data's classes come from the format's reader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ftrecipe.plugin import DataGuidance, PlanData, RecipeRuntimeError
from ftrecipe_vision.classification import architecture as arch
from ftrecipe_vision.classification import choices
from ftrecipe_vision.classification.sections import MIN_IMAGES_PER_CLASS

if TYPE_CHECKING:  # the plan is handed the task; it never imports the task module
    from ftrecipe.plugin import ModalityTask as ImageClassificationTask


class ClassificationPlan:
    """The task's plan hooks (``ModalityTask.planner``)."""

    def __init__(self, task: ImageClassificationTask) -> None:
        self.task = task
        self.recipe = task.recipe

    def classes(self) -> list[str]:
        splits = self.task.plan_splits()
        return choices.head_labels(self.recipe, splits.report.details.get("classes") if splits is not None else None)

    def guidance(self, classes: int) -> DataGuidance:
        return DataGuidance(minimum=MIN_IMAGES_PER_CLASS * classes, unit="images",
                            source=f"Google AutoML Vision: at least {MIN_IMAGES_PER_CLASS} images per class")

    def model(self) -> torch.nn.Module:
        """What ``build_model`` returns, on meta, float32 (torchvision's weights are float32)."""
        labels = self.classes()
        architecture = choices.architecture(self.recipe, labels, smoke=self.task.ctx.smoke)
        try:
            with torch.device("meta"), torch.random.fork_rng(devices=[]):
                model = architecture.build()
        except TypeError as error:
            raise RecipeRuntimeError(("model", "config"), f"{self.recipe.model.base}: {error}") from error
        self.task.labels = labels
        return model

    def forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        """``batch_size`` pictures at the training size and their classes through the cross-entropy."""
        size = choices.image_size(self.recipe, self.task.ctx.smoke)
        dtype = next(model.parameters()).dtype
        pixels = torch.empty(batch_size, 3, size, size, dtype=dtype, device="meta")
        labels = torch.zeros(batch_size, dtype=torch.long, device="meta")
        return F.cross_entropy(arch.logits_of(model(pixels)).float(), labels)

    def checkpoint_units(self, model: torch.nn.Module) -> list[str]:
        return []  # torchvision's classifiers have no gradient checkpointing (the recipe key is refused)

    def data(self) -> PlanData:
        """Pictures per split, per class in the training split, and the per-class guidance."""
        task = self.task
        splits = task.plan_splits()
        if splits is None:
            return PlanData(unavailable=task.plan_unavailable)
        report = splits.report
        per_class = report.details.get("train_images_per_class", {})
        classes = report.details.get("classes", [])
        files = {row["image"] for row in splits.train if isinstance(row["image"], str)}
        overlap = sum(1 for row in splits.eval or () if isinstance(row["image"], str) and row["image"] in files)
        few = "few training pictures for "  # the reader's guidance warning: the plan states it from the guidance
        return PlanData(train_examples=report.train_examples, eval_examples=report.eval_examples,
                        amount={"images": float(report.train_examples)}, balance={name: int(per_class.get(name, 0)) for name in classes},
                        guidance=self.guidance(max(1, len(classes))), mean_fill=1.0, overlap=overlap,
                        warnings=[warning for warning in report.warnings if not warning.startswith(few)])
