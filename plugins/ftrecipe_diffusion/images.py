"""The per-example crop and flip of a subject photo (reading and checking photos is
``ftrecipe.plugin``'s ``check_image`` and ``load_rgb``, shared by every image modality).

Randomness (crop position, flip) comes from the generator the caller passes:
``example_rng(seed, index)``, so an interrupted and resumed run sees the same crops.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def prepare(image: Image.Image, resolution: int, *, center_crop: bool, flip: bool, rng: np.random.Generator | None) -> np.ndarray:
    """Resize the shorter side to ``resolution``, crop a square (centre, or where ``rng`` says) and
    flip half the time when asked; returns float32 CHW in [-1, 1], the VAE's input range."""
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    spare_x, spare_y = size[0] - resolution, size[1] - resolution
    if center_crop or rng is None:
        left, top = spare_x // 2, spare_y // 2
    else:
        left, top = int(rng.integers(0, spare_x + 1)), int(rng.integers(0, spare_y + 1))
    image = image.crop((left, top, left + resolution, top + resolution))
    pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    if flip and rng is not None and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))
