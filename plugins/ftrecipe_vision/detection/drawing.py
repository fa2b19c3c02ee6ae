"""Sample predictions for people: evaluation images with the predicted boxes (class and score) drawn on them,
next to the ground truth (thin white), tiled into one picture that the runner saves as ``samples/step-N.png``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212))
TILE = 256
"""Each image is drawn at most this many pixels on its longer side."""


def draw(pixels: np.ndarray, truth: Mapping[str, Any], found: Mapping[str, Any], classes: Sequence[str], *,
         threshold: float = 0.3) -> Any:
    """One PIL image: ``pixels`` (HWC uint8) with the truth's boxes and the detections scoring ``threshold`` or more."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(pixels)
    ratio = min(1.0, TILE / max(image.size))
    if ratio < 1:
        image = image.resize((round(image.width * ratio), round(image.height * ratio)))
    pen = ImageDraw.Draw(image)
    for box in truth["boxes"]:
        pen.rectangle([v * ratio for v in box], outline=(255, 255, 255), width=1)
    for box, label, score in zip(np.asarray(found["boxes"]).tolist(), np.asarray(found["labels"]).tolist(),
                                 np.asarray(found["scores"]).tolist(), strict=True):
        if score < threshold:
            continue
        colour = COLOURS[(int(label) - 1) % len(COLOURS)]
        x1, y1, x2, y2 = (v * ratio for v in box)
        pen.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        text = f"{classes[int(label) - 1]} {score:.2f}"
        left, top, right, bottom = pen.textbbox((x1, y1), text)
        lift = bottom - top + 2
        pen.rectangle([x1, max(0, y1 - lift), x1 + right - left + 2, max(0, y1 - lift) + lift], fill=colour)
        pen.text((x1 + 1, max(0, y1 - lift)), text, fill=(0, 0, 0))
    return image


def grid(images: Sequence[Any], columns: int = 4) -> Any:
    """The images tiled left to right, top to bottom, on black."""
    from PIL import Image

    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    width, height = max(i.width for i in images), max(i.height for i in images)
    sheet = Image.new("RGB", (columns * width, rows * height))
    for n, image in enumerate(images):
        sheet.paste(image, ((n % columns) * width, (n // columns) * height))
    return sheet
