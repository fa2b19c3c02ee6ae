"""Shared fixtures of the YOLO plugin tests: COCO8, a small detection folder to break, and "pre-trained" weights."""

from __future__ import annotations

import importlib.util
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, SHARED

if importlib.util.find_spec("ultralytics") is None:  # found, not imported: Ultralytics patches PIL for the whole process
    collect_ignore_glob = ["test_*.py"]  # the yolo modality needs the ftrecipe[yolo] extra

COCO8 = SHARED / "coco8"
SHIPPED_COCO8 = ROOT / "recipes" / "data" / "coco8"


@pytest.fixture
def coco8() -> Path:
    """The real COCO8 (YOLO format, 80 names), or a skip saying where it was looked for."""
    if not (COCO8 / "coco8.yaml").is_file():
        pytest.skip(f"COCO8 not found at {COCO8} (expected ../shared/datasets/coco8 from the repo root)")
    return COCO8


@pytest.fixture
def coco8_copy(tmp_path: Path) -> Path:
    """A writable copy of the COCO8 sample that ships with the recipes (its data YAML: ``path: .``)."""
    target = tmp_path / "coco8"
    shutil.copytree(SHIPPED_COCO8, target)
    return target / "coco8.yaml"


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ultralytics weights of a YOLO11n with COCO's 80 classes, as `YOLO.save` writes them (random values:
    what matters to these tests is the file format and which tensors move)."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "yolo11n-coco.pt"
    model = YOLO("yolo11n.yaml")
    model.model.names = {i: f"class{i}" for i in range(80)}
    model.save(str(path))
    return path


@pytest.fixture
def detection_folder(tmp_path: Path) -> Callable[..., Path]:
    """A small YOLO dataset under tmp_path: ``make(images={"a.png": "0 0.5 0.5 0.2 0.2"}, val=...)`` -> data.yaml.

    An image's label text of None means no label file (a background image)."""
    from PIL import Image

    def make(train: dict[str, str | None], val: dict[str, str | None] | None = None, names=("cat", "dog")) -> Path:
        root = tmp_path / "set"
        for split, files in (("train", train), ("val", val or {})):
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            for i, (name, label) in enumerate(files.items()):
                pixels = np.random.default_rng(zlib.crc32(f"{split}/{name}".encode())).integers(0, 255, (48, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / "images" / split / name)
                if label is not None:
                    (root / "labels" / split / Path(name).with_suffix(".txt")).write_text(label)
        lines = ["path: .", "train: images/train", *(["val: images/val"] if val else []), "names:"]
        lines += [f"  {i}: {n}" for i, n in enumerate(names)]
        (root / "data.yaml").write_text("\n".join(lines) + "\n")
        return root / "data.yaml"

    return make
