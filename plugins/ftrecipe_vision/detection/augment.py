"""The detection augmentations: torchvision's ``transforms.v2`` functions on an image and its ``BoundingBoxes``.

Each function is ``apply(image, boxes, labels, rng, **params) -> (image, boxes, labels)``: ``image`` a
``tv_tensors.Image`` (uint8, CHW), ``boxes`` a ``tv_tensors.BoundingBoxes`` (XYXY, the image's canvas), and
``rng`` the example's ``numpy`` generator (``example_rng(seed, index)``, epoch-aware): every random choice
comes from it, so an example looks the same in every worker and after a resume. v2 moves the boxes with
the pixels; what a zoom pushes off the canvas is clamped, and boxes left too small are dropped with
their labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

GREY = 114
"""The fill of a zoomed-out canvas (YOLO's letterbox grey)."""
MIN_KEPT = 2.0
"""A box narrower or lower than this (pixels) after a zoom is dropped."""


def flip(image: Any, boxes: Any, labels: torch.Tensor, rng: np.random.Generator) -> tuple[Any, Any, torch.Tensor]:
    """Left-right flip (the step's ``p`` is drawn by the caller)."""
    return F.horizontal_flip(image), F.horizontal_flip(boxes), labels


def scale(image: Any, boxes: Any, labels: torch.Tensor, rng: np.random.Generator, *,
          range: tuple[float, float] = (0.75, 1.25)) -> tuple[Any, Any, torch.Tensor]:  # noqa: A002 - the recipe's key
    """Zoom by a factor from ``range`` on a canvas of the image's size: padded with grey (out) or cropped (in)."""
    low, high = sorted(range)
    factor = float(rng.uniform(low, high))
    height, width = image.shape[-2:]
    new_h, new_w = max(1, round(height * factor)), max(1, round(width * factor))
    image, boxes = F.resize(image, [new_h, new_w], antialias=True), F.resize(boxes, [new_h, new_w])
    if factor < 1:  # out: the picture somewhere on a grey canvas
        left, top = int(rng.integers(0, width - new_w + 1)), int(rng.integers(0, height - new_h + 1))
        padding = [left, top, width - new_w - left, height - new_h - top]
        image, boxes = F.pad(image, padding, fill=GREY), F.pad(boxes, padding)
    else:  # in: a window of the original size
        left, top = int(rng.integers(0, new_w - width + 1)), int(rng.integers(0, new_h - height + 1))
        image, boxes = F.crop(image, top, left, height, width), F.crop(boxes, top, left, height, width)
    return (image, *_keep_visible(boxes, labels))


def color(image: Any, boxes: Any, labels: torch.Tensor, rng: np.random.Generator, *,
          strength: float = 0.3) -> tuple[Any, Any, torch.Tensor]:
    """Brightness, contrast and saturation, each multiplied by a factor within ``1 +/- strength``."""
    low, high = max(0.0, 1 - strength), 1 + strength
    brightness, contrast, saturation = (float(v) for v in rng.uniform(low, high, size=3))
    image = F.adjust_brightness(image, brightness)
    image = F.adjust_contrast(image, contrast)
    return F.adjust_saturation(image, saturation), boxes, labels


def _keep_visible(boxes: Any, labels: torch.Tensor) -> tuple[Any, torch.Tensor]:
    """Boxes clamped to the canvas; those left under :data:`MIN_KEPT` pixels dropped with their labels."""
    boxes = F.clamp_bounding_boxes(boxes)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= MIN_KEPT) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_KEPT)
    return tv_tensors.wrap(boxes[keep], like=boxes), labels[keep]
