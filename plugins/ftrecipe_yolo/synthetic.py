"""The offline demo's detection set: circles, squares and triangles on textured backgrounds.

The pictures are ``ftrecipe.plugin.draw_shapes``'s (shared with the torchvision detection demo): each is
a pure function of (seed, index), so the demo, its tests and a resumed run all see the same pictures.
"""

from __future__ import annotations

from typing import Any

from ftrecipe.plugin import draw_shapes


def draw_split(section: Any, *, seed: int, count: int, split: str) -> list[dict[str, Any]]:
    """Rows of drawn images: pixels in ``pixels`` (written out when the run stages its dataset)."""
    rows = []
    for index in range(count):
        pixels, boxes = draw_shapes(seed, index, size=section.image_size, classes=list(section.classes), max_objects=section.max_objects)
        rows.append({"pixels": pixels, "labels": boxes, "where": f"synthetic:{split}:{index}", "name": f"{split}-{index:05d}.png"})
    return rows
