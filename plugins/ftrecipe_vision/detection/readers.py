"""Readers of the detection formats: COCO JSON, Pascal VOC XML, YOLO txt, and the demo's drawn shapes.

A row is one image: ``{"image": path, "size": [width, height], "boxes": [[x1, y1, x2, y2], ...],
"labels": [class name, ...], "where": path}`` in torchvision's box convention (pixels of the upright image);
the drawn images carry their ``pixels`` instead of a path. Every image is decoded and every box checked
(:mod:`ftrecipe_vision.detection.boxes`) before training; a bad one is skipped into the data report with
its file and line or object, or stops the run at the data key (``data.on_error: fail``). An image without
boxes is a background image: kept, and counted.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ftrecipe.plugin import DataReport, DatasetSplits, RecipeRuntimeError, make_splits, require_source, source_paths
from ftrecipe_vision.detection.boxes import BadAnnotation, BoxRules, check_box, from_centre

MIN_SIDE = 8
"""Images smaller than this (pixels, either side) hold nothing a detector can learn from."""
SEED_GUIDANCE = 100
"""The seed's guidance: fine-tuning a detector needs about 100 labelled images."""

Key = tuple[str | int, ...]
Annotation = tuple[str, str, list[float]]
"""(where, class name, raw box x1 y1 x2 y2 in pixels)."""


class Checker:
    """Checks an image and its boxes; keeps the row, or skips or fails per ``on_error``."""

    def __init__(self, section: Any, classes: Sequence[str], report: DataReport) -> None:
        self.section, self.classes, self.report = section, classes, report

    def row(self, image: Path, annotations: Callable[[int, int], Iterable[Annotation]], key: Key) -> dict[str, Any] | None:
        """The row of ``image``, whose raw boxes ``annotations(width, height)`` gives, or None when it is bad."""
        from ftrecipe.plugin import ImageProblem, check_image

        try:
            if not image.is_file():
                raise BadAnnotation(str(image), "image missing")
            try:
                width, height = check_image(image, MIN_SIDE)
            except ImageProblem as problem:
                raise BadAnnotation(str(image), problem.why) from problem
            rules = BoxRules(self.classes, width, height, self.section.min_box_size, self.section.tolerance)
            checked = [check_box(where, label, box, rules) for where, label, box in annotations(width, height)]
        except BadAnnotation as bad:
            if self.section.on_error == "fail":
                raise RecipeRuntimeError(key, f"{bad} (data.on_error: skip leaves such images out)") from bad
            self.report.skip(bad.where, bad.why)
            return None
        return {"image": str(image), "size": [width, height], "boxes": [box for _, box in checked],
                "labels": [label for label, _ in checked], "where": str(image)}


def _fail_or_skip(section: Any, report: DataReport, key: Key, where: str, why: str) -> None:
    if section.on_error == "fail":
        raise RecipeRuntimeError(key, f"{where}: {why} (data.on_error: skip leaves such files out)")
    report.skip(where, why)


def complete_report(splits: DatasetSplits, classes: Sequence[str]) -> DatasetSplits:
    """Per-class image and box counts, background images, and the seed's guidance as a warning."""
    report = splits.report
    for split, rows in (("train", splits.train), ("eval", splits.eval or [])):
        boxes = Counter(label for row in rows for label in row["labels"])
        images = Counter(label for row in rows for label in set(row["labels"]))
        report.details[f"{split}_boxes_per_class"] = {name: boxes[name] for name in classes}
        report.details[f"{split}_images_per_class"] = {name: images[name] for name in classes}
        report.details[f"{split}_background_images"] = sum(1 for row in rows if not row["labels"])
    report.details["classes"] = list(classes)
    if len(splits.train) < SEED_GUIDANCE:
        report.warnings.append(f"{len(splits.train)} training images: fine-tuning a detector needs about {SEED_GUIDANCE} "
                               "labelled images (the seed's guidance); expect a weak model")
    return splits


def _finish(section: Any, parts: dict[str, list[dict[str, Any]] | None], classes: Sequence[str], *, seed: int, smoke: bool,
            files: list[Path], report: DataReport) -> DatasetSplits:
    if not parts["train"]:
        first = next(iter(report.skipped.items()), None)
        why = f" ({len(report.skipped)} left out; the first, {first[0]}: {first[1]})" if first else ""
        raise RecipeRuntimeError(("data", "train"), f"no usable training images{why}")
    splits = make_splits(section, parts["train"], parts["eval"], seed=seed, smoke=smoke, files=files, report=report)
    return complete_report(splits, classes)


def _splits(section: Any, base_dir: Path) -> list[tuple[str, list[tuple[Path, Key]]]]:
    require_source(section)
    return [(split, source_paths(section, split, base_dir)) for split in ("train", "eval") if getattr(section, split)]


# -- COCO JSON ---------------------------------------------------------------------------------------------

def read_coco(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: coco``: ``instances_*.json`` files; categories (in id order) are the classes."""
    folder = (base_dir / Path(section.images).expanduser()).resolve()
    if not folder.is_dir():
        raise RecipeRuntimeError(("data", "images"), f"no image folder at {folder}")
    report, files = DataReport(), []
    classes: list[str] | None = None
    parts: dict[str, list[dict[str, Any]] | None] = {"train": None, "eval": None}
    crowd = 0
    for split, sources in _splits(section, base_dir):
        rows: list[dict[str, Any]] = []
        for path, key in sources:
            names, images = _parse_coco(path, key)
            if classes is not None and names != classes:
                raise RecipeRuntimeError(key, f"{path.name}: its categories differ from the training file's ({', '.join(classes)})")
            classes, checker = names, Checker(section, names, report)
            files.append(path)
            for file_name, boxes, crowded in images:
                crowd += crowded
                row = checker.row(folder / file_name, lambda w, h, a=boxes: a, key)
                if row is not None:
                    rows.append(row)
        parts[split] = rows
    report.details["crowd_boxes_left_out"] = crowd
    return _finish(section, parts, classes or [], seed=seed, smoke=smoke, files=files, report=report)


def _parse_coco(path: Path, key: Key) -> tuple[list[str], list[tuple[str, list[Annotation], int]]]:
    """Class names and, per image, (file name, its boxes, crowd boxes left out)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = {int(image["id"]): str(image["file_name"]) for image in data["images"]}
        annotations = list(data.get("annotations", []))
    except (ValueError, KeyError, TypeError) as error:
        raise RecipeRuntimeError(key, f"{path} is not COCO JSON: {type(error).__name__}: {error}") from error
    if not categories:
        raise RecipeRuntimeError(key, f"{path}: no categories")
    by_image: dict[int, list[Annotation]] = {image_id: [] for image_id in images}
    crowd: Counter[int] = Counter()
    for number, annotation in enumerate(annotations):
        where = f"{path}: annotation {annotation.get('id', number)}"
        image_id = annotation.get("image_id")
        if image_id not in by_image:
            raise RecipeRuntimeError(key, f"{where}: image_id {image_id!r} is not among the file's images")
        where += f" (image {images[image_id]})"
        if annotation.get("iscrowd"):
            crowd[image_id] += 1
            continue
        category = annotation.get("category_id")
        label = categories.get(category, f"category id {category}")
        bbox = annotation.get("bbox")
        box = [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]] if isinstance(bbox, list) and len(bbox) == 4 \
            and all(isinstance(v, (int, float)) for v in bbox) else list(bbox or [])
        by_image[image_id].append((where, label, box))
    names = [categories[i] for i in sorted(categories)]
    return names, [(images[i], by_image[i], crowd[i]) for i in sorted(images)]


# -- Pascal VOC XML ----------------------------------------------------------------------------------------

def read_voc(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: voc``: one XML per image; VOC's 1-based pixel indices become torchvision's 0-based corners."""
    images = (base_dir / Path(section.images).expanduser()).resolve() if section.images else None
    if images is not None and not images.is_dir():
        raise RecipeRuntimeError(("data", "images"), f"no image folder at {images}")
    report = DataReport()
    parsed: dict[str, list[tuple[Path, Key, Any]]] = {}
    files: list[Path] = []
    for split, sources in _splits(section, base_dir):
        parsed[split] = []
        for source, key in sources:
            xmls = sorted(source.glob("*.xml")) if source.is_dir() else [source]
            if not xmls:
                raise RecipeRuntimeError(key, f"no .xml annotation files in {source}")
            for xml in xmls:
                files.append(xml)
                try:
                    parsed[split].append((xml, key, _parse_voc(xml)))
                except BadAnnotation as bad:
                    _fail_or_skip(section, report, key, bad.where, bad.why)
    classes = list(section.classes) if section.classes else sorted(
        {label for rows in parsed.values() for _, _, (_, objects) in rows for _, label, _ in objects})
    checker = Checker(section, classes, report)
    parts: dict[str, list[dict[str, Any]] | None] = {"train": None, "eval": None}
    for split, rows in parsed.items():
        parts[split] = [row for xml, key, (file_name, objects) in rows
                        if (row := checker.row((images or xml.parent) / file_name, lambda w, h, o=objects: o, key)) is not None]
    return _finish(section, parts, classes, seed=seed, smoke=smoke, files=files, report=report)


def _parse_voc(xml: Path) -> tuple[str, list[Annotation]]:
    """(image file name, its objects) of one VOC annotation file."""
    try:
        root = ElementTree.parse(xml).getroot()
    except ElementTree.ParseError as error:
        raise BadAnnotation(str(xml), f"not valid XML ({error})") from error
    file_name = (root.findtext("filename") or "").strip()
    if not file_name:
        raise BadAnnotation(str(xml), "no <filename>")
    objects: list[Annotation] = []
    for number, item in enumerate(root.iter("object"), start=1):
        where = f"{xml}: object {number}"
        label = (item.findtext("name") or "").strip()
        box = item.find("bndbox")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(tag) or "nan") for tag in ("xmin", "ymin", "xmax", "ymax"))  # type: ignore[union-attr]
        except (AttributeError, ValueError) as error:
            raise BadAnnotation(where, "no <bndbox> with numeric xmin, ymin, xmax, ymax") from error
        objects.append((where, label, [xmin - 1, ymin - 1, xmax, ymax]))
    return file_name, objects


# -- YOLO txt --------------------------------------------------------------------------------------------

def label_file(image: Path) -> Path:
    """Ultralytics' layout (``.../images/x.jpg`` -> ``.../labels/x.txt``), else the ``.txt`` beside the image."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            candidate = Path(*parts).with_suffix(".txt")
            if candidate.is_file():
                return candidate
            break
    return image.with_suffix(".txt")


def _yolo_boxes(path: Path, names: Sequence[str], width: int, height: int) -> list[Annotation]:
    if not path.is_file():
        return []  # a background image
    boxes: list[Annotation] = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        where, fields = f"{path}:{number}", line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise BadAnnotation(where, f"expected 'class cx cy w h' (5 numbers), found {len(fields)}")
        try:
            cls, (cx, cy, w, h) = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError as error:
            raise BadAnnotation(where, f"not a label line: {line.strip()[:60]!r}") from error
        label = names[cls] if 0 <= cls < len(names) else f"class id {cls}"
        boxes.append((where, label, from_centre(cx, cy, w, h, width, height)))
    return boxes


def read_yolo_txt(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: yolo``: image folders, a ``class cx cy w h`` label file per image; ``data.names`` are the classes."""
    from ftrecipe.plugin import image_files

    report, names = DataReport(), list(section.names)
    checker = Checker(section, names, report)
    parts: dict[str, list[dict[str, Any]] | None] = {"train": None, "eval": None}
    files: list[Path] = []
    for split, sources in _splits(section, base_dir):
        rows = []
        for source, key in sources:
            for image in image_files(source, recursive=True) if source.is_dir() else [source]:
                label = label_file(image)
                if label.is_file():
                    files.append(label)
                row = checker.row(image, lambda w, h, p=label: _yolo_boxes(p, names, w, h), key)
                if row is not None:
                    rows.append(row)
        parts[split] = rows
    return _finish(section, parts, names, seed=seed, smoke=smoke, files=files, report=report)


# -- the demo's drawn shapes -------------------------------------------------------------------------------

def draw_split(section: Any, *, seed: int, count: int, split: str) -> list[dict[str, Any]]:
    """``count`` pictures of shapes with their boxes, a pure function of ``seed`` (pixels kept in the rows)."""
    from ftrecipe.plugin import draw_shapes

    size, rows = section.image_size, []
    for index in range(count):
        pixels, shapes = draw_shapes(seed, index, size=size, classes=list(section.classes), max_objects=section.max_objects)
        rows.append({"image": None, "pixels": pixels, "size": [size, size], "where": f"{split}:{index}",
                     "boxes": [from_centre(cx, cy, w, h, size, size) for _, cx, cy, w, h in shapes],
                     "labels": [label for label, *_ in shapes]})
    return rows


def read_synthetic(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: synthetic``: the demo's circles, squares and triangles (training and evaluation drawn apart)."""
    train = draw_split(section, seed=seed, count=section.train_size, split="train")
    held = draw_split(section, seed=seed + 1, count=section.eval_size, split="eval")
    splits = make_splits(section, train, held, seed=seed, smoke=smoke)
    return complete_report(splits, list(section.classes))
