"""Prior-preservation class images: only the shortfall is generated, with progress, and cached.

Generated images are written next to the user's own without ever replacing one (a name already
taken is skipped) and atomically (a temporary file renamed), so an interrupted generation leaves
only whole images, which the next run counts and does not make again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def free_names(folder: Path, count: int) -> list[Path]:
    """``count`` paths ``class-NNNNN.png`` in ``folder`` that no file holds yet."""
    names, number = [], 0
    while len(names) < count:
        path = folder / f"class-{number:05d}.png"
        if not path.exists():
            names.append(path)
        number += 1
    return names


def generate_class_images(pipeline: Any, prompt: str, folder: Path, count: int, *, seed: int, resolution: int,
                          steps: int, log: Callable[[str], None], batch_size: int = 4) -> list[Path]:
    """Generate ``count`` images of ``prompt`` into ``folder`` (created); returns their paths.

    Image k of this call is seeded ``seed + k``: the same recipe makes the same images.
    """
    folder.mkdir(parents=True, exist_ok=True)
    targets = free_names(folder, count)
    pipeline.set_progress_bar_config(disable=True)
    made: list[Path] = []
    for start in range(0, count, batch_size):
        chunk = targets[start : start + batch_size]
        generators = [torch.Generator().manual_seed(seed + start + k) for k in range(len(chunk))]
        with torch.no_grad():
            images = pipeline([prompt] * len(chunk), num_inference_steps=steps, height=resolution, width=resolution,
                              generator=generators).images
        for image, path in zip(images, chunk):
            temporary = path.with_name(f".{path.name}.tmp")
            image.save(temporary, format="PNG")
            os.replace(temporary, path)
            made.append(path)
        log(f"class images: generated {len(made)} of {count} into {folder}")
    return made
