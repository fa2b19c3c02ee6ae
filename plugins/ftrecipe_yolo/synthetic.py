"""The offline demo's detection set: circles, squares and triangles on textured backgrounds.

Each image is a pure function of (seed, split, index), so the demo, its tests and a resumed run all
see the same pictures. Shapes get random colours, sizes and positions, and the backgrounds carry
noise and stripes, so the detector has to learn shape rather than colour.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.integers(60, 200, size=3)
    y, x = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    stripes = 25 * np.sin((np.cos(angle) * x + np.sin(angle) * y) * 2 * np.pi / period)
    noise = rng.normal(0, 12, size=(size, size, 3))
    return np.clip(base[None, None, :] + stripes[..., None] + noise, 0, 255)


def _mask(shape: str, size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] + 0.5
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    if shape == "square":
        return (abs(x - cx) <= radius) & (abs(y - cy) <= radius)
    # an upward triangle inside the same box
    top, bottom = cy - radius, cy + radius
    half = radius * (y - top) / (2 * radius)
    return (y >= top) & (y <= bottom) & (abs(x - cx) <= half)


def draw(seed: int, index: int, *, size: int, classes: list[str], max_objects: int) -> tuple[np.ndarray, list[tuple]]:
    """One RGB image (uint8, size x size) and its boxes ``(class, cx, cy, w, h)`` as image fractions."""
    rng = np.random.default_rng([seed, index])
    image = _background(rng, size)
    boxes: list[tuple] = []
    taken: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):  # place without overlapping the shapes already drawn
            radius = rng.uniform(0.09, 0.2) * size
            cx, cy = rng.uniform(radius, size - radius, size=2)
            if all((cx - ox) ** 2 + (cy - oy) ** 2 > (radius + r + 2) ** 2 for ox, oy, r in taken):
                break
        else:
            continue
        shape = classes[int(rng.integers(len(classes)))]
        colour = rng.integers(0, 256, size=3)
        colour[int(rng.integers(3))] = rng.choice([0, 255])  # keep it distinct from the mid-tone background
        image[_mask(shape, size, cx, cy, radius)] = colour
        taken.append((cx, cy, radius))
        left, right = max(0.0, cx - radius), min(float(size), cx + radius)
        top, bottom = max(0.0, cy - radius), min(float(size), cy + radius)
        boxes.append((shape, (left + right) / 2 / size, (top + bottom) / 2 / size, (right - left) / size, (bottom - top) / size))
    return image.astype(np.uint8), boxes


def draw_split(section: Any, *, seed: int, count: int, split: str) -> list[dict[str, Any]]:
    """Rows of drawn images: pixels in ``pixels`` (written out when the run stages its dataset)."""
    rows = []
    for index in range(count):
        pixels, boxes = draw(seed, index, size=section.image_size, classes=list(section.classes), max_objects=section.max_objects)
        rows.append({"pixels": pixels, "labels": boxes, "where": f"synthetic:{split}:{index}", "name": f"{split}-{index:05d}.png"})
    return rows
