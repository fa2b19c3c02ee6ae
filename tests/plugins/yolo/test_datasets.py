"""The detection readers and the per-file check: every kind of bad file named, skipped or fatal per on_error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe_yolo.datasets import read_coco, read_synthetic, read_yolo
from ftrecipe_yolo.sections import CocoData, SyntheticDetectionData, YoloData
from ftrecipe_yolo.staging import stage
from ftrecipe.plugin import draw_shapes as draw

GOOD = "0 0.5 0.5 0.25 0.25\n1 0.3 0.3 0.1 0.2\n"


def yolo_section(path: Path, **kw) -> YoloData:
    return YoloData(format="yolo", yaml=str(path), **kw)


def read(path: Path, **kw):
    return read_yolo(yolo_section(path, **kw), base_dir=path.parent, seed=0, smoke=False)


def test_coco8_reads_with_per_class_counts_and_the_seed_guidance(coco8: Path):
    splits = read(coco8 / "coco8.yaml")
    assert len(splits.train) == 4 and len(splits.eval) == 4 and not splits.report.skipped
    details = splits.report.details
    assert len(details["classes"]) == 80 and details["classes"][0] == "person"
    for split, ours in (("train", "train"), ("val", "eval")):
        lines = [line.split() for f in sorted((coco8 / "labels" / split).glob("*.txt")) for line in f.read_text().splitlines()]
        counted = {details["classes"][int(c)]: sum(1 for fields in lines if fields[0] == c) for c in {f[0] for f in lines}}
        assert details[f"{ours}_boxes_per_class"] == counted and sum(counted.values()) == len(lines) > 0
    assert details["eval_boxes_per_class"]["person"] == 10
    assert any("about 100 labelled images (the seed's guidance)" in w for w in splits.report.warnings)
    assert splits.files == [(coco8 / "coco8.yaml").resolve()]


def test_every_bad_file_is_reported_by_name_and_left_out(detection_folder, tmp_path: Path):
    data = detection_folder({
        "good.png": GOOD, "background.png": None, "empty.png": "",
        "class.png": "7 0.5 0.5 0.1 0.1\n", "outside.png": "0 0.95 0.5 0.3 0.1\n", "zero.png": "0 0.5 0.5 0 0.1\n",
        "short.png": "0 0.5 0.5\n", "polygon.png": "1 0.1 0.1 0.5 0.1 0.5 0.6\n",
    })
    images = data.parent / "images" / "train"
    shutil.copy(images / "good.png", images / "copy.png")
    (data.parent / "labels" / "train" / "copy.txt").write_text(GOOD)
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / "tiny.png")
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(images / "gray.png")  # grayscale: Ultralytics converts it
    (data.parent / "labels" / "train" / "gray.txt").write_text(GOOD)

    splits = read(data, eval_fraction=0.0)
    kept = {Path(row["image"]).name for row in splits.train}
    assert kept == {"good.png", "background.png", "empty.png", "polygon.png", "gray.png"} or \
        kept == {"copy.png", "background.png", "empty.png", "polygon.png", "gray.png"}
    why = {Path(where.split(":")[0]).name: reason for where, reason in splits.report.skipped.items()}
    assert "class id 7 is outside the 2 class names" in why["class.txt"]
    assert "box outside the image" in why["outside.txt"]
    assert "zero area" in why["zero.txt"]
    assert "expected 'class cx cy w h'" in why["short.txt"]
    assert "not a readable image" in why["corrupt.jpg"]
    assert "too small" in why["tiny.png"]
    assert "duplicate of" in (why.get("copy.png") or why["good.png"])
    assert any(where.endswith("class.txt:1") for where in splits.report.skipped)  # file and line
    polygon = next(row for row in splits.train if row["image"].endswith("polygon.png"))
    assert polygon["labels"] == [("dog", pytest.approx(0.3), pytest.approx(0.35), pytest.approx(0.4), pytest.approx(0.5))]
    assert splits.report.details["train_background_images"] == 2


def test_on_error_fail_stops_at_the_data_key_naming_the_file_and_line(detection_folder):
    data = detection_folder({"good.png": GOOD, "class.png": "0 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n"})
    with pytest.raises(RecipeRuntimeError) as caught:
        read(data, on_error="fail")
    assert caught.value.path == ("data", "yaml")
    assert "class.txt:2: class id 5 is outside the 2 class names" in str(caught.value)


def test_a_val_image_that_repeats_a_training_image_is_left_out(detection_folder):
    data = detection_folder({"a.png": GOOD, "b.png": GOOD}, val={"c.png": GOOD})
    shutil.copy(data.parent / "images" / "train" / "a.png", data.parent / "images" / "val" / "c.png")
    splits = read(data)
    assert len(splits.train) == 2 and not splits.eval
    assert any("duplicate of" in why and "a.png" in why for why in splits.report.skipped.values())


def test_missing_yaml_and_missing_split_are_located_errors(tmp_path: Path, detection_folder):
    with pytest.raises(RecipeRuntimeError, match="no data YAML"):
        read(tmp_path / "nope.yaml")
    data = detection_folder({"a.png": GOOD})
    data.write_text(data.read_text().replace("images/train", "images/elsewhere"))
    with pytest.raises(RecipeRuntimeError, match="does not exist"):
        read(data)


def _coco_json(yolo_yaml: Path, split: str, path: Path) -> None:
    """COCO JSON written from a YOLO split (pixel boxes, category ids from 1), as another tool would."""
    root = yolo_yaml.parent
    names = ["person", *[f"c{i}" for i in range(1, 80)]]
    images, annotations = [], []
    for number, image in enumerate(sorted((root / "images" / split).glob("*.jpg")), start=1):
        width, height = Image.open(image).size
        images.append({"id": number, "file_name": image.name, "width": width, "height": height})
        label = root / "labels" / split / f"{image.stem}.txt"
        for line in label.read_text().splitlines() if label.is_file() else []:
            cls, cx, cy, w, h = (float(v) for v in line.split())
            annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": int(cls) + 1, "iscrowd": 0,
                                "bbox": [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]})
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def test_coco_json_converts_through_ultralytics_to_the_same_boxes(coco8_copy: Path, tmp_path: Path):
    _coco_json(coco8_copy, "train", tmp_path / "instances_train.json")
    _coco_json(coco8_copy, "val", tmp_path / "instances_val.json")
    section = CocoData(format="coco", train="instances_train.json", eval="instances_val.json",
                       images=str(coco8_copy.parent / "images" / "train"))
    coco = read_coco(section, base_dir=tmp_path, seed=0, smoke=False)
    yolo = read(coco8_copy)
    assert [Path(r["image"]).name for r in coco.train] == [Path(r["image"]).name for r in yolo.train]
    for a, b in zip(coco.train, yolo.train):
        assert len(a["labels"]) == len(b["labels"])
        for (ca, *xa), (cb, *xb) in zip(a["labels"], b["labels"]):
            assert (ca == "person") == (cb == "person")
            assert xa == pytest.approx(xb, abs=2e-4)
    # the val JSON names images that live in another folder: reported, not a crash
    assert len(coco.report.skipped) == 4 and all(why == "image missing" for why in coco.report.skipped.values())


def test_the_synthetic_set_is_a_pure_function_of_the_seed():
    a, boxes_a = draw(3, 7, size=96, classes=["circle", "square", "triangle"], max_objects=3)
    b, boxes_b = draw(3, 7, size=96, classes=["circle", "square", "triangle"], max_objects=3)
    c, _ = draw(4, 7, size=96, classes=["circle", "square", "triangle"], max_objects=3)
    assert np.array_equal(a, b) and boxes_a == boxes_b and not np.array_equal(a, c)
    for _, cx, cy, w, h in boxes_a:
        assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1 and w > 0.1
    splits = read_synthetic(SyntheticDetectionData(format="synthetic", train_size=10, eval_size=4), base_dir=Path("."), seed=0, smoke=False)
    assert len(splits.train) == 10 and len(splits.eval) == 4
    assert set(splits.report.details["train_boxes_per_class"]) <= {"circle", "square", "triangle"}


def test_staging_renumbers_a_class_subset_and_never_writes_beside_the_source(coco8_copy: Path, tmp_path: Path):
    splits = read(coco8_copy)
    before = sorted(p.name for p in coco8_copy.parent.rglob("*"))
    data_yaml = stage({"train": splits.train, "eval": splits.eval}, ["elephant", "person"], tmp_path / "run" / "data")
    assert sorted(p.name for p in coco8_copy.parent.rglob("*")) == before
    staged = data_yaml.parent
    labels = [line.split() for f in (staged / "labels" / "train").glob("*.txt") for line in f.read_text().splitlines()]
    expected_persons = sum(1 for row in splits.train for label in row["labels"] if label[0] == "person")
    expected_elephants = sum(1 for row in splits.train for label in row["labels"] if label[0] == "elephant")
    assert sum(1 for fields in labels if fields[0] == "1") == expected_persons
    assert sum(1 for fields in labels if fields[0] == "0") == expected_elephants
    assert len(labels) == expected_persons + expected_elephants  # every other class dropped
    images = sorted((staged / "images" / "train").iterdir())
    assert len(images) == 4 and all(p.is_symlink() for p in images)
    from ruamel.yaml import YAML

    assert YAML(typ="safe").load(data_yaml.read_text())["names"] == {0: "elephant", 1: "person"}
