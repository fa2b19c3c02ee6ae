"""The detection dataset: a row's picture as a float tensor and its target dict, as torchvision's detectors take them.

Batches are lists (``{"images": [CHW tensors], "targets": [{"boxes", "labels"}]}``): images keep their own
sizes and the model's transform resizes and pads them. Training examples pass the recipe's
``data.augment`` steps; step ``k`` of example ``i`` in epoch ``e`` draws from
``default_rng([example_seed(seed, e, i), k])``, so an example is the same in every worker and after a
resume, and changing one step's ``p`` leaves the others' draws alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors

from ftrecipe.plugin import AugmentationSection, Registry, example_seed, resolve


@dataclass(frozen=True)
class Step:
    """One recipe step: ``apply(image, boxes, labels, rng, **params)`` with probability ``p``."""

    name: str
    p: float
    params: Mapping[str, Any]
    apply: Callable[..., Any]


def steps_of(sections: Sequence[AugmentationSection], registry: Registry, modality: str) -> list[Step]:
    """The recipe's ``data.augment`` as steps; each section's fields but ``name`` and ``p`` are keyword arguments."""
    records = registry.augmentations_for(modality)
    return [Step(section.name, section.p, section.model_dump(exclude={"name", "p"}), resolve(records[section.name].apply))
            for section in sections]


def picture(row: Mapping[str, Any]) -> torch.Tensor:
    """The row's picture, upright RGB, as a uint8 CHW tensor."""
    if row.get("pixels") is not None:
        pixels = row["pixels"]
    else:
        from ftrecipe.plugin import load_rgb

        pixels = load_rgb(row["image"])
    # torch.from_numpy shares the memory: contiguous and writable (PIL's buffer is read-only), copied only if not
    return torch.from_numpy(np.require(pixels, requirements="CW")).permute(2, 0, 1)


class DetectionDataset(torch.utils.data.Dataset):
    """Rows -> ``(image float CHW in 0..1, {"boxes": float [N, 4] XYXY, "labels": int64 [N]})``; label 0 is the background."""

    epoch_aware = True  # indices carry their epoch: augmentation is seeded per (seed, epoch, index)

    def __init__(self, rows: Sequence[Mapping[str, Any]], classes: Sequence[str], *, steps: Sequence[Step] = (), seed: int = 0) -> None:
        self.rows, self.steps, self.seed = list(rows), list(steps), seed
        self.ids = {name: i + 1 for i, name in enumerate(classes)}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        row = self.rows[int(index)]
        image = tv_tensors.Image(picture(row))
        boxes = tv_tensors.BoundingBoxes(torch.tensor(row["boxes"], dtype=torch.float32).reshape(-1, 4), format="XYXY",
                                         canvas_size=tuple(image.shape[-2:]))
        labels = torch.tensor([self.ids[name] for name in row["labels"]], dtype=torch.int64)
        if self.steps:
            key = example_seed(self.seed, getattr(index, "epoch", 0), int(index))
            for k, step in enumerate(self.steps):
                rng = np.random.default_rng([key, k])
                if rng.random() < step.p:
                    image, boxes, labels = step.apply(image, boxes, labels, rng, **step.params)
        target = {"boxes": boxes.as_subclass(torch.Tensor).reshape(-1, 4), "labels": labels}
        return image.as_subclass(torch.Tensor).float().div(255), target


def collate(items: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]]) -> dict[str, list[Any]]:
    """Lists, not stacks: detection images differ in size (the model batches them itself)."""
    return {"images": [image for image, _ in items], "targets": [target for _, target in items]}
