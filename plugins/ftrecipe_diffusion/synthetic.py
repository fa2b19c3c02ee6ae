"""A subject the plugin draws: a patterned toy on varied backgrounds, and plain toys as its class.

The demo needs a subject a person can recognise in the sample grids without any download: a round
toy in one colour with a white stripe and two eyes (the subject), drawn at a random place, size
and on a random two-colour background; the class images are toys of other shapes and colours,
without the stripe or eyes. Everything is a pure function of (seed, index).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SUBJECT_COLOUR = (220, 40, 40)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    top, bottom = rng.integers(40, 230, size=3), rng.integers(40, 230, size=3)
    ramp = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    pixels = (top * (1 - ramp) + bottom * ramp).astype(np.uint8)
    return Image.fromarray(np.broadcast_to(pixels, (size, size, 3)).copy())


def _placed(rng: np.random.Generator, size: int, smallest: float, largest: float):
    """A background and where a toy goes on it: (image, its drawing context, centre x, centre y, half-size)."""
    image = _background(rng, size)
    half = size * rng.uniform(smallest, largest)
    cx, cy = rng.uniform(half, size - half, size=2)
    return image, ImageDraw.Draw(image), cx, cy, half


def draw_subject(seed: int, index: int, size: int = 64) -> Image.Image:
    """Photo ``index`` of the subject: the red striped toy with eyes, placed and scaled at random."""
    image, draw, cx, cy, radius = _placed(np.random.default_rng([seed, 1, index]), size, 0.24, 0.34)
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=SUBJECT_COLOUR)
    band = radius * 0.28
    draw.rectangle((cx - radius * 0.95, cy + band * 0.2, cx + radius * 0.95, cy + band * 1.2), fill=(250, 250, 250))
    eye = radius * 0.16
    for side in (-1, 1):
        ex, ey = cx + side * radius * 0.38, cy - radius * 0.35
        draw.ellipse((ex - eye, ey - eye, ex + eye, ey + eye), fill=(20, 20, 20))
    return image


def draw_class_toy(seed: int, index: int, size: int = 64) -> Image.Image:
    """Class image ``index``: a plain toy (square, triangle or disc) in a random colour, no stripe, no eyes."""
    rng = np.random.default_rng([seed, 2, index])
    image, draw, cx, cy, half = _placed(rng, size, 0.2, 0.32)
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    shape = index % 3
    if shape == 0:
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=colour)
    elif shape == 1:
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    else:
        draw.ellipse((cx - half, cy - half * 0.6, cx + half, cy + half * 0.6), fill=colour)
    return image
