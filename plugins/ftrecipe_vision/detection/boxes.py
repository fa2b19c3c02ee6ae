"""The check every box goes through before training, whatever format it came in.

Boxes are torchvision's: ``(x1, y1, x2, y2)`` in pixels of the upright image (EXIF orientation applied, as
:func:`ftrecipe.plugin.load_rgb` opens it). A box is bad when a number is missing or not finite, its class is
not one of the data's classes, it has zero area (narrower or lower than ``min_box_size`` pixels), or it lies
outside the image by more than ``tolerance`` pixels; a box just over the edge (annotation tools round) is
clamped. A bad box makes its whole image bad: training on the image without that box would teach the
model that the object there is background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


class BadAnnotation(ValueError):
    """One image or box that cannot be used, and why (``where`` names the file and the line or object)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where, self.why = where, why


@dataclass(frozen=True)
class BoxRules:
    """What a good box is: the data's classes, the image's upright size, the reader's tolerances."""

    classes: Sequence[str]
    width: int
    height: int
    min_box_size: float = 1.0
    tolerance: float = 2.0


def check_box(where: str, label: str, coordinates: Sequence[float], rules: BoxRules) -> tuple[str, list[float]]:
    """``(label, [x1, y1, x2, y2])`` clamped to the image, or :class:`BadAnnotation` saying what is wrong."""
    if label not in rules.classes:
        raise BadAnnotation(where, f"unknown class '{label}' (the classes are {', '.join(rules.classes)})")
    if len(coordinates) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in coordinates):
        raise BadAnnotation(where, f"a box needs four finite numbers, found {list(coordinates)!r}")
    x1, y1, x2, y2 = (float(v) for v in coordinates)
    if x2 - x1 < rules.min_box_size or y2 - y1 < rules.min_box_size:
        raise BadAnnotation(where, f"box of zero area ({x1:g},{y1:g})-({x2:g},{y2:g}): narrower or lower than "
                                   f"{rules.min_box_size:g} px")
    tol, w, h = rules.tolerance, rules.width, rules.height
    if x1 < -tol or y1 < -tol or x2 > w + tol or y2 > h + tol:
        raise BadAnnotation(where, f"box outside the image: ({x1:g},{y1:g})-({x2:g},{y2:g}) in a {w}x{h} image "
                                   f"(more than {tol:g} px beyond its edge)")
    clamped = [min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h)]
    if clamped[2] - clamped[0] < rules.min_box_size or clamped[3] - clamped[1] < rules.min_box_size:
        raise BadAnnotation(where, "box of zero area once clamped to the image")
    return label, clamped


def from_centre(cx: float, cy: float, w: float, h: float, width: int, height: int) -> list[float]:
    """A YOLO box (centre and size as fractions of the image) in pixels ``x1, y1, x2, y2``."""
    return [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
