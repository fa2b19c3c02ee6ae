"""Training and evaluation datasets: a picture per index, augmented (training) and normalised, with its class id.

Evaluation pictures are resized (shorter side to ``resize``) and centre-cropped to the training size, the
way torchvision's ImageNet weights were evaluated, then normalised with the weights' mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from ftrecipe.plugin import RunFailure, load_rgb
from ftrecipe_vision.classification.augment import AugmentChain, augmentation_key

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 224 / 256
"""The share of the resized picture the centre crop keeps (torchvision's ImageNet evaluation: 224 of 256)."""


@dataclass(frozen=True)
class Preprocessing:
    """How a picture becomes the model's input: its size, the resize before the centre crop, mean and std."""

    size: int
    resize: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    @classmethod
    def of(cls, size: int, meta: dict[str, Any] | None = None) -> Preprocessing:
        """For ``size`` pixels; ``meta`` (a weights entry's) gives the resize-to-crop ratio, mean and std."""
        meta = meta or {}
        crop, resize = _side(meta.get("crop_size")), _side(meta.get("resize_size"))
        ratio = crop / resize if crop and resize else CROP_FRACTION
        return cls(size, max(size, round(size / ratio)), tuple(meta.get("mean", IMAGENET_MEAN)), tuple(meta.get("std", IMAGENET_STD)))

    def fit(self, image: Image.Image) -> Image.Image:
        """Resize and centre-crop to ``size`` x ``size`` (a picture already that size is left alone)."""
        if image.size == (self.size, self.size):
            return image
        image = F.resize(image, self.resize, antialias=True)
        return F.center_crop(image, [self.size, self.size])

    def tensor(self, image: Image.Image) -> torch.Tensor:
        """float32 CHW, normalised."""
        pixels = F.to_dtype(F.to_image(image), torch.float32, scale=True)
        return F.normalize(pixels, list(self.mean), list(self.std))

    def describe(self) -> dict[str, Any]:
        return {"image_size": self.size, "resize_size": self.resize, "mean": list(self.mean), "std": list(self.std)}


def _side(value: Any) -> int | None:
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else None
    return int(value) if value else None


def picture(row: dict[str, Any]) -> Image.Image:
    """The row's picture, upright, in RGB (a file path, or a drawn array)."""
    image = row["image"]
    if isinstance(image, np.ndarray):
        return Image.fromarray(image).convert("RGB")
    try:
        return load_rgb(image)
    except OSError as error:  # checked when read; changed or removed since
        raise RunFailure(f"{image}: cannot be read any more ({error})") from error


class ImageDataset(torch.utils.data.Dataset):
    """Rows ``{"image", "label"}`` -> (pixels, class id); the chain augments where given (training)."""

    epoch_aware = True  # indices carry their epoch: augmentation is seeded per (seed, epoch, index)

    def __init__(self, rows: list[dict[str, Any]], label_ids: dict[str, int], prep: Preprocessing, seed: int,
                 chain: AugmentChain | None = None) -> None:
        self.rows, self.label_ids, self.prep, self.seed, self.chain = rows, label_ids, prep, seed, chain

    def __len__(self) -> int:
        return len(self.rows)

    def image(self, index: int, fired: list[str] | None = None) -> Image.Image:
        """The picture the model sees at ``index`` (an ``EpochIndex`` carries the epoch), before normalising."""
        image = picture(self.rows[int(index)])
        if self.chain is not None and len(self.chain):
            image, applied = self.chain.apply(image, self.prep.size, augmentation_key(self.seed, index))
            if fired is not None:
                fired.extend(applied)
        return self.prep.fit(image)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.prep.tensor(self.image(index)), self.label_ids[self.rows[int(index)]["label"]]


def collate(items: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.stack([pixels for pixels, _ in items]), "labels": torch.tensor([label for _, label in items])}
