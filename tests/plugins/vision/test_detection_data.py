"""The object-detection readers, the per-box check, the augmentations and mAP: no model, no run (fast)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ftrecipe.plugin import EpochIndex, RecipeRuntimeError
from ftrecipe_vision.detection.boxes import BadAnnotation, BoxRules, check_box
from ftrecipe_vision.detection.data import DetectionDataset, Step
from ftrecipe_vision.detection.metrics import coco_map
from ftrecipe_vision.detection.readers import read_coco, read_synthetic, read_voc, read_yolo_txt
from ftrecipe_vision.detection.sections import CocoData, SyntheticDetectionData, VocData, YoloTxtData
from tests.conftest import ROOT

W, H = 64, 48


def picture(path: Path, size: tuple[int, int] = (W, H)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(zlib.crc32(path.name.encode())).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def voc(path: Path, file_name: str, objects: list[tuple[str, tuple]]) -> Path:
    body = "".join(f"<object><name>{name}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for name, b in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{file_name}</filename><size><width>{W}</width><height>{H}</height></size>{body}</annotation>")
    return path


# -- the per-box check -------------------------------------------------------------------------------------

RULES = BoxRules(("cat", "dog"), W, H, min_box_size=1.0, tolerance=2.0)


@pytest.mark.parametrize(("label", "box", "why"), [
    ("horse", [1, 1, 10, 10], "unknown class 'horse' (the classes are cat, dog)"),
    ("cat", [5, 5, 5, 20], "box of zero area"),
    ("cat", [10, 5, 4, 20], "box of zero area"),
    ("cat", [-5, 0, 10, 10], "box outside the image"),
    ("cat", [0, 0, 70, 10], "box outside the image"),
    ("cat", [1, 2, float("nan"), 4], "four finite numbers"),
    ("cat", [1, 2, 3], "four finite numbers"),
])
def test_every_box_check_says_why(label: str, box: list, why: str):
    with pytest.raises(BadAnnotation) as caught:
        check_box("f.xml: object 1", label, box, RULES)
    assert why in caught.value.why and caught.value.where == "f.xml: object 1"


def test_a_box_just_over_the_edge_is_clamped():
    assert check_box("w", "dog", [-1.5, 0, W + 1, H], RULES) == ("dog", [0.0, 0.0, float(W), float(H)])


# -- the readers ------------------------------------------------------------------------------------------

def test_voc_reads_boxes_zero_based_lists_bad_objects_and_keeps_background(tmp_path: Path):
    images = tmp_path / "images"
    for name in ("good", "background", "outside", "horse", "zero", "broken"):
        picture(images / f"{name}.png")
    xml = tmp_path / "xml"
    voc(xml / "good.xml", "good.png", [("cat", (1, 2, 30, 40)), ("dog", (31, 1, 64, 48))])
    voc(xml / "background.xml", "background.png", [])
    voc(xml / "outside.xml", "outside.png", [("cat", (1, 1, 10, 10)), ("dog", (40, 1, 90, 20))])
    voc(xml / "horse.xml", "horse.png", [("horse", (1, 1, 10, 10))])
    voc(xml / "zero.xml", "zero.png", [("cat", (10, 10, 9, 20))])
    voc(xml / "missing.xml", "nowhere.png", [("cat", (1, 1, 10, 10))])
    (xml / "broken.xml").write_text("<annotation><filename>broken.png</filename><object>")
    section = VocData(format="voc", train=str(xml), images=str(images), classes=["cat", "dog"], eval_fraction=0.0)
    splits = read_voc(section, base_dir=tmp_path, seed=0, smoke=False)
    rows = {Path(row["image"]).name: row for row in splits.train}
    assert set(rows) == {"good.png", "background.png"}
    assert rows["good.png"]["boxes"] == [[0.0, 1.0, 30.0, 40.0], [30.0, 0.0, 64.0, 48.0]]  # VOC's 1-based corners
    assert rows["good.png"]["labels"] == ["cat", "dog"] and rows["good.png"]["size"] == [W, H]
    why = {Path(where.split(":")[0]).name + where.partition(":")[2]: reason for where, reason in splits.report.skipped.items()}
    assert "box outside the image" in why["outside.xml object 2"]
    assert "unknown class 'horse'" in why["horse.xml object 1"]
    assert "zero area" in why["zero.xml object 1"]
    assert "not valid XML" in why["broken.xml"]
    assert "image missing" in why["nowhere.png"]
    details = splits.report.details
    assert details["train_background_images"] == 1 and details["train_boxes_per_class"] == {"cat": 1, "dog": 1}
    assert any("about 100 labelled images" in w for w in splits.report.warnings)

    with pytest.raises(RecipeRuntimeError) as caught:
        read_voc(section.model_copy(update={"on_error": "fail"}), base_dir=tmp_path, seed=0, smoke=False)
    assert caught.value.path == ("data", "train") and "data.on_error: skip" in caught.value.message


def test_voc_without_classes_takes_the_names_found(tmp_path: Path):
    picture(tmp_path / "a.png")
    voc(tmp_path / "a.xml", "a.png", [("dog", (1, 1, 10, 10)), ("cat", (20, 20, 30, 30))])
    splits = read_voc(VocData(format="voc", train=str(tmp_path / "a.xml"), eval_fraction=0.0), base_dir=tmp_path, seed=0, smoke=False)
    assert splits.report.details["classes"] == ["cat", "dog"]


def test_coco_reads_categories_in_id_order_and_names_the_bad_annotation(tmp_path: Path):
    for name in ("a.png", "b.png", "c.png", "d.png"):
        picture(tmp_path / "images" / name)
    data = {
        "images": [{"id": i, "file_name": n, "width": W, "height": H} for i, n in enumerate(["a.png", "b.png", "c.png", "d.png"], 1)],
        "categories": [{"id": 3, "name": "dog"}, {"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [2, 3, 10, 20], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 64, 48], "iscrowd": 1},
            {"id": 12, "image_id": 3, "category_id": 7, "bbox": [2, 3, 10, 20], "iscrowd": 0},
            {"id": 13, "image_id": 4, "category_id": 1, "bbox": [50, 3, 30, 20], "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances_train.json"
    path.write_text(json.dumps(data))
    splits = read_coco(CocoData(format="coco", train=str(path), images="images", eval_fraction=0.0), base_dir=tmp_path, seed=0, smoke=False)
    assert splits.report.details["classes"] == ["cat", "dog"] and splits.report.details["crowd_boxes_left_out"] == 1
    rows = {Path(row["image"]).name: row for row in splits.train}
    assert set(rows) == {"a.png", "b.png"}  # b.png: background
    assert rows["a.png"]["boxes"] == [[2.0, 3.0, 12.0, 23.0]] and rows["a.png"]["labels"] == ["dog"]
    skipped = dict(splits.report.skipped)
    assert "unknown class 'category id 7'" in skipped[f"{path}: annotation 12 (image c.png)"]
    assert "box outside the image" in skipped[f"{path}: annotation 13 (image d.png)"]
    assert splits.files == [path.resolve()]


def test_yolo_txt_reads_labels_beside_the_images_folder(tmp_path: Path):
    images = tmp_path / "set" / "images"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        picture(images / name)
    labels = tmp_path / "set" / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text("1 0.5 0.5 0.25 0.5\n")
    (labels / "c.txt").write_text("0 0.5 0.5 0.25 0.5\n5 0.5 0.5 0.1 0.1\n")
    (labels / "d.txt").write_text("0 0.5 0.5\n")
    section = YoloTxtData(format="yolo", train=str(images), names=["cat", "dog"], eval_fraction=0.0)
    splits = read_yolo_txt(section, base_dir=tmp_path, seed=0, smoke=False)
    rows = {Path(row["image"]).name: row for row in splits.train}
    assert set(rows) == {"a.png", "b.png"}
    assert rows["a.png"]["labels"] == ["dog"] and rows["a.png"]["boxes"] == [[24.0, 12.0, 40.0, 36.0]]
    assert rows["b.png"]["labels"] == []  # no label file: background
    assert "unknown class 'class id 5'" in splits.report.skipped[f"{labels / 'c.txt'}:2"]
    assert "expected 'class cx cy w h'" in splits.report.skipped[f"{labels / 'd.txt'}:1"]


def test_the_shipped_pet_heads_sample_reads_clean():
    section = VocData(format="voc", train="data/pet-heads/annotations", images="data/pet-heads/images", classes=["cat", "dog"])
    splits = read_voc(section, base_dir=ROOT / "recipes", seed=42, smoke=False)
    assert not splits.report.skipped and len(splits.train) + len(splits.eval) == 10
    assert all(len(row["labels"]) == 1 and row["labels"][0] == Path(row["image"]).name[:3] for row in [*splits.train, *splits.eval])
    assert sum(p.stat().st_size for p in (ROOT / "recipes" / "data" / "pet-heads").rglob("*")) < 1_000_000


# -- augmentation ------------------------------------------------------------------------------------------

def steps() -> list[Step]:
    from ftrecipe_vision.detection import augment

    return [Step("flip", 0.5, {}, augment.flip), Step("scale", 1.0, {"range": (0.6, 1.4)}, augment.scale),
            Step("color", 1.0, {"strength": 0.3}, augment.color)]


def test_augmentation_is_seeded_per_example_and_epoch_and_moves_the_boxes():
    section = SyntheticDetectionData(format="synthetic", train_size=6, eval_size=2, image_size=64)
    rows = read_synthetic(section, base_dir=Path("."), seed=3, smoke=False).train
    dataset = DetectionDataset(rows, ["circle", "square", "triangle"], steps=steps(), seed=7)
    for i in range(len(rows)):
        first, again = dataset[EpochIndex(i, 0)], dataset[EpochIndex(i, 0)]
        assert torch.equal(first[0], again[0]) and torch.equal(first[1]["boxes"], again[1]["boxes"])
        assert first[0].shape == (3, 64, 64) and first[1]["boxes"].shape[0] == first[1]["labels"].shape[0]
        boxes = first[1]["boxes"]
        assert ((boxes >= 0) & (boxes <= 64)).all() and ((boxes[:, 2:] - boxes[:, :2]) >= 2).all()
    assert any(not torch.equal(dataset[EpochIndex(i, 0)][0], dataset[EpochIndex(i, 1)][0]) for i in range(len(rows)))


def test_a_flip_moves_each_box_to_its_mirror_image():
    from ftrecipe_vision.detection import augment

    rows = [{"image": None, "pixels": np.zeros((40, 100, 3), np.uint8), "size": [100, 40], "boxes": [[10, 5, 30, 25]],
             "labels": ["cat"], "where": "x"}]
    flipped = DetectionDataset(rows, ["cat"], steps=[Step("flip", 1.0, {}, augment.flip)])[0]
    assert flipped[1]["boxes"].tolist() == [[70.0, 5.0, 90.0, 25.0]] and flipped[1]["labels"].tolist() == [1]


# -- mAP -----------------------------------------------------------------------------------------------------

TRUTHS = [{"size": [100, 100], "boxes": [[10, 10, 50, 50], [60, 60, 90, 95]], "labels": [1, 2]},
          {"size": [100, 100], "boxes": [[5, 5, 40, 30]], "labels": [1]}]


def test_perfect_detections_score_one_and_misses_score_zero():
    perfect = [{"boxes": t["boxes"], "labels": t["labels"], "scores": [0.9] * len(t["labels"])} for t in TRUTHS]
    scores = coco_map(TRUTHS, perfect, ["cat", "dog"])
    assert scores["mAP50"] == pytest.approx(1.0) and scores["mAP50-95"] == pytest.approx(1.0)
    assert scores["AP50/cat"] == pytest.approx(1.0) and scores["AP/dog"] == pytest.approx(1.0)
    wrong_class = [{"boxes": t["boxes"], "labels": [3 - l for l in t["labels"]], "scores": [0.9] * len(t["labels"])} for t in TRUTHS]
    assert coco_map(TRUTHS, wrong_class, ["cat", "dog"])["mAP50"] == 0.0
    nothing = [{"boxes": np.zeros((0, 4)), "labels": [], "scores": []} for _ in TRUTHS]
    assert coco_map(TRUTHS, nothing, ["cat", "dog"]) == {"mAP50": 0.0, "mAP50-95": 0.0}


def test_a_loose_box_counts_at_iou_half_but_not_at_the_strict_thresholds():
    truth = [{"size": [100, 100], "boxes": [[0, 0, 40, 40]], "labels": [1]}]
    loose = [{"boxes": [[0, 0, 40, 56]], "labels": [1], "scores": [0.8]}]  # IoU 0.71
    scores = coco_map(truth, loose, ["cat"])
    assert scores["mAP50"] == pytest.approx(1.0) and 0.3 < scores["mAP50-95"] < 0.6
