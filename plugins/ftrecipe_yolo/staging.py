"""The checked dataset as Ultralytics reads it: a folder inside the run, never the user's.

``<run>/data/`` holds ``images/{train,val}`` (links to the user's images, or the drawn PNGs),
``labels/{train,val}`` (the checked boxes, class ids renumbered for the head's class list) and
``data.yaml``. Ultralytics writes its label caches there too, so the user's dataset folder is only
ever read. The folder is rebuilt from the rows on every run and resume, whole, then swapped in.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SPLITS = {"train": "train", "eval": "val"}


def stage(rows: Mapping[str, Sequence[Mapping[str, Any]]], classes: Sequence[str], folder: Path) -> Path:
    """Write the staged dataset for ``classes`` (boxes of other classes are dropped); returns its data.yaml."""
    from ruamel.yaml import YAML

    index = {name: i for i, name in enumerate(classes)}
    building = folder.with_name(f".{folder.name}.building")
    shutil.rmtree(building, ignore_errors=True)
    for split, subdir in SPLITS.items():
        images, labels = building / "images" / subdir, building / "labels" / subdir
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for number, row in enumerate(rows.get(split) or []):
            if "pixels" in row:
                from PIL import Image

                name = row["name"]
                Image.fromarray(row["pixels"]).save(images / name)
            else:
                source = Path(row["image"])
                name = f"{number:06d}-{source.name}"  # unique even when two folders share file names
                os.symlink(source, images / name)
            lines = [f"{index[c]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in row["labels"] if c in index]
            (labels / Path(name).with_suffix(".txt").name).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    spec = {"path": str(folder), "train": "images/train", "val": "images/val", "names": dict(enumerate(classes))}
    with open(building / "data.yaml", "w", encoding="utf-8") as stream:
        YAML(typ="safe", pure=True).dump(spec, stream)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(building, folder)
    return folder / "data.yaml"
