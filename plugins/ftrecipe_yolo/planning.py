"""What `ftrecipe plan` asks of the YOLO task: the detector Ultralytics' trainer builds, frozen as its
``freeze`` argument freezes it, one training forward on meta tensors, the EMA copy, and the data counted.

The detector is built from its architecture YAML (``yolo11n.pt`` -> ``yolo11n.yaml``, which Ultralytics
ships), on the CPU (its constructor runs a small forward to find the strides), then moved to the
meta device; these models are a few million parameters.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ftrecipe.plugin import DataGuidance, FreezeReport, PlanData, RecipeRuntimeError, RemoteCodeRefused
from ftrecipe_yolo.datasets import SEED_GUIDANCE
from ftrecipe_yolo.sections import SMOKE_IMAGE_SIZE

if TYPE_CHECKING:  # the plan is handed the task; it never imports the task module
    from ftrecipe.plugin import ModalityTask as YoloTask

GUIDANCE = DataGuidance(minimum=SEED_GUIDANCE, unit="images", source="the seed: YOLO needs about 100 labelled images")
STRIDE = 32
"""Ultralytics rounds the image size up to a multiple of the model's largest stride (32 for every detector)."""
ALWAYS_FROZEN = (".dfl",)
"""Names Ultralytics' trainer freezes whatever ``freeze`` says (the DFL's fixed projection)."""


# -- the data ----------------------------------------------------------------------------------------

def head_classes(task: YoloTask) -> list[str] | None:
    """The classes the run's head detects: ``head.labels`` or the dataset's names (None: the data is not here)."""
    head = task.recipe.head
    splits = task.plan_splits()
    if splits is None:
        return list(head.labels) if head.mode == "replace" and head.labels else None
    return task._head_classes(splits.report.details["classes"])


# -- the model -----------------------------------------------------------------------------------------

def _ships(name: str) -> bool:
    """Ultralytics ships a model YAML of this name (``yolo11n.yaml`` is its ``yolo11.yaml`` at scale n)."""
    from ultralytics.nn.tasks import yaml_model_load

    try:
        yaml_model_load(name)
    except FileNotFoundError:
        return False
    return True


def architecture(task: YoloTask) -> str | dict[str, Any]:
    """The config the trainer builds from, without reading weights where a YAML describes them: a model YAML
    as the run resolves it; for ``.pt`` weights the YAML of the same name Ultralytics ships, else the
    config stored in the local file (the run's own: Ultralytics builds from the checkpoint's ``yaml``)."""
    base = task.recipe.model.base
    if not base.endswith(".pt"):
        return task.model_source()[0]
    shipped = Path(base).with_suffix(".yaml").name
    if _ships(shipped):
        return shipped
    local = (task.ctx.base_dir / Path(base).expanduser()).resolve()
    if local.is_file():
        if not task.ctx.runs_checkpoint_code:  # Ultralytics' checkpoints are pickles: reading one runs what it carries
            raise RemoteCodeRefused(f"plan unavailable: the architecture of '{base}' is inside the pickled checkpoint, and "
                                    "unpickling runs whatever code the file carries: name the architecture's YAML in "
                                    "model.base, or let the plan read it with `--trust-remote-code`")
        return task._cfg(str(local))
    raise RecipeRuntimeError(("model", "base"), f"'{base}' is not a local file and Ultralytics ships no model YAML named "
                             f"{shipped}: name the architecture's YAML (e.g. yolo11n.yaml) or put the weights next to the recipe")


def _pretrained(task: YoloTask) -> bool:
    """The run loads weights: a ``.pt`` base, not built from scratch (whether the file is here yet or not)."""
    return task.recipe.model.base.endswith(".pt") and not (task.ctx.smoke or task.recipe.model.init == "scratch")


def image_size(task: YoloTask) -> int:
    """The training image side: ``model.image_size`` (128 at most with --smoke) rounded up to the stride, as Ultralytics does."""
    size = task.recipe.model.image_size
    size = min(size, SMOKE_IMAGE_SIZE) if task.ctx.smoke else size
    return max(math.ceil(size / STRIDE) * STRIDE, STRIDE)


class YoloPlan:
    """The YOLO task's plan hooks (``ModalityTask.planner``): the detector Ultralytics' trainer would build, on meta."""

    def __init__(self, task: YoloTask) -> None:
        self.task = task

    def checkpoint_units(self, model: torch.nn.Module) -> list[str]:
        return []  # Ultralytics' detectors have no gradient checkpointing (the recipe key is ignored)

    def data(self) -> PlanData:
        """Images per split, boxes per head class in the training split (zeros included), and the seed's guidance."""
        task = self.task
        splits = task.plan_splits()
        if splits is None:
            return PlanData(unavailable=task.plan_unavailable, guidance=GUIDANCE)
        report, classes = splits.report, head_classes(task) or []
        boxes = report.details.get("train_boxes_per_class", {})
        repeated = f"{len(splits.train)} training images: "  # the reader's guidance warning: the plan states it from GUIDANCE
        warnings = [warning for warning in report.warnings if not warning.startswith(repeated)]
        if not splits.eval:
            warnings.append("no validation images: the run stops before training (give a val split or an eval_fraction above 0)")
        train = {row["where"] for row in splits.train}
        overlap = sum(1 for row in splits.eval or () if row["where"] in train)
        return PlanData(train_examples=report.train_examples, eval_examples=report.eval_examples,
                        amount={"images": float(report.train_examples)}, balance={name: int(boxes.get(name, 0)) for name in classes},
                        guidance=GUIDANCE, mean_fill=1.0, overlap=overlap, warnings=warnings)

    def model(self) -> torch.nn.Module:
        """The ``DetectionModel`` the trainer trains (the data's or ``head.labels``' classes), on meta, float32.

        Loading weights can reshape the head: the classification branch's width follows the class count, and
        Ultralytics' ``load`` rebuilds it at the weights' width to transfer it. So with weights the model is
        loaded, as the trainer loads it, from a model of the weights' architecture and class count (random values)."""
        task = self.task
        from ultralytics.nn.tasks import DetectionModel

        cfg = architecture(task)
        classes = head_classes(task)
        if classes is None:
            task.ctx.warn("ftrecipe plan: the data is not here, so the head is planned for the model YAML's own classes")
        fresh = lambda: copy.deepcopy(cfg) if isinstance(cfg, dict) else cfg  # noqa: E731 - DetectionModel writes nc into a dict
        try:
            with torch.random.fork_rng(devices=[]):  # initialisation draws: leave the caller's generator as it was
                model = DetectionModel(fresh(), nc=len(classes) if classes else None, verbose=False)
                if _pretrained(task):
                    model.load(DetectionModel(fresh(), verbose=False), verbose=False)
        except FileNotFoundError as error:
            raise RecipeRuntimeError(("model", "base"), f"no model YAML '{cfg}': {error}") from error
        return model.to("meta")

    def freeze(self, model: torch.nn.Module) -> tuple[torch.nn.Module, FreezeReport]:
        """What ``DetectionTrainer._setup_train`` does with the ``freeze`` list ``layers.freeze_list`` computes: a
        parameter whose name holds ``model.N.`` (or ``model.N.sub.``) or ``.dfl`` is frozen, every other floating
        one trains (Ultralytics re-enables any frozen some other way)."""
        task = self.task
        from ftrecipe_yolo.layers import freeze_list

        rows, frozen_blocks = freeze_list(task.recipe, model)
        names = [f"model.{row}." for row in rows] + list(ALWAYS_FROZEN)
        for name, parameter in model.named_parameters():
            if any(part in name for part in names):
                parameter.requires_grad_(False)
            elif parameter.is_floating_point():
                parameter.requires_grad_(True)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if trainable == 0:
            raise RecipeRuntimeError(("freeze",), "the freeze plan leaves no parameter to train")
        return model, FreezeReport(task.recipe.freeze.strategy, trainable, sum(p.numel() for p in model.parameters()), frozen_blocks)

    def forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        """A batch of letterboxed images through the detector, and the dense part of its loss.

        The detection loss assigns targets to anchors from the labels' values (data-dependent, so not on meta);
        what runs over every anchor whatever the labels is here: the classification BCE on all scores and, with
        DFL, the softmax that decodes every box distribution. The box and DFL terms on the assigned anchors are left out."""
        task = self.task
        size = image_size(task)
        parameter = next(model.parameters())
        images = torch.empty(batch_size, 3, size, size, dtype=parameter.dtype, device="meta")
        predictions = model(images)
        heads = list(predictions.values()) if "one2many" in predictions else [predictions]  # end-to-end heads train both
        detect = model.model[-1]
        loss = torch.zeros((), device="meta")
        for head in heads:
            scores = head["scores"].permute(0, 2, 1).contiguous()
            loss = loss + F.binary_cross_entropy_with_logits(scores, torch.empty_like(scores), reduction="none").sum()
            if detect.reg_max > 1:
                distribution = head["boxes"].permute(0, 2, 1).contiguous()
                b, anchors, channels = distribution.shape
                projection = torch.arange(detect.reg_max, dtype=distribution.dtype, device="meta")
                decoded = distribution.view(b, anchors, 4, channels // 4).softmax(3).matmul(projection)
                loss = loss + decoded.sum()
        return loss

    def extras(self, model: torch.nn.Module) -> dict[str, int]:
        """Ultralytics' ``ModelEMA``: a float32 copy of the whole model, parameters and buffers."""
        tensors = [*model.parameters(), *model.buffers()]
        return {"ema": sum(t.numel() * (4 if t.is_floating_point() else t.element_size()) for t in tensors)}
