"""Readers of the detection formats, and the check every image and label file goes through.

A row is one image: ``{"image": path, "labels": [(class_name, cx, cy, w, h), ...], "where": ...}``
with boxes normalised to the image (YOLO's convention). Class *names* travel rather than ids, so
that a head replaced by a subset of the classes is a matter of choosing names (see ``staging``).
Nothing here writes next to the user's data: Ultralytics trains on a staged copy of the checked
rows (its label caches included) inside the run's folder.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ftrecipe.plugin import DataReport, DatasetSplits, RecipeRuntimeError, make_splits, source_paths

MIN_SIDE = 8
"""Images smaller than this (pixels, either side) hold nothing a detector can learn from."""
TOLERANCE = 1e-3
"""How far (in image fractions) a box may poke outside the image before it counts as outside."""
SEED_GUIDANCE = 100
"""The seed's guidance: YOLO fine-tuning needs about 100 labelled images."""

Box = tuple[str, float, float, float, float]


class BadFile(ValueError):
    """One image or label file that cannot be used, and why (``where`` names the file and line)."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where, self.why = where, why


# -- the per-file check ---------------------------------------------------------------------------

def image_size(path: Path, content: bytes) -> tuple[int, int]:
    """Upright (width, height) of a decodable image (``content``, the bytes of ``path``); :class:`BadFile`
    for a corrupt, truncated or tiny one."""
    from ftrecipe.plugin import ImageProblem, check_image

    try:
        return check_image(path, MIN_SIDE, content=content)
    except ImageProblem as problem:
        raise BadFile(str(path), problem.why) from problem


def parse_label_file(path: Path, names: Sequence[str]) -> list[Box]:
    """The boxes of one YOLO label file (``class cx cy w h`` per line, or a polygon: its bounding box).

    A missing or empty file is a background image (no boxes). Class ids outside ``names``, boxes outside
    the image and boxes of zero area are :class:`BadFile` naming the line."""
    if not path.is_file():
        return []
    boxes: list[Box] = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        where = f"{path}:{number}"
        fields = line.split()
        if not fields:
            continue
        try:
            cls, values = int(float(fields[0])), [float(v) for v in fields[1:]]
        except ValueError as error:
            raise BadFile(where, f"not a label line: {line.strip()[:60]!r}") from error
        if len(values) == 4:
            cx, cy, w, h = values
        elif len(values) >= 6 and len(values) % 2 == 0:  # a segment: its bounding box
            xs, ys = values[0::2], values[1::2]
            cx, cy, w, h = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys)
        else:
            raise BadFile(where, f"expected 'class cx cy w h' (5 numbers), found {len(fields)}")
        if not 0 <= cls < len(names):
            raise BadFile(where, f"class id {cls} is outside the {len(names)} class names (0-{len(names) - 1})")
        if w <= 0 or h <= 0:
            raise BadFile(where, f"box of zero area (w={w:g}, h={h:g})")
        if cx - w / 2 < -TOLERANCE or cy - h / 2 < -TOLERANCE or cx + w / 2 > 1 + TOLERANCE or cy + h / 2 > 1 + TOLERANCE:
            raise BadFile(where, f"box outside the image (cx={cx:g} cy={cy:g} w={w:g} h={h:g}; coordinates are fractions 0-1)")
        boxes.append((names[cls], cx, cy, w, h))
    return boxes


def label_path(image: Path) -> Path:
    """Ultralytics' convention: the label of ``.../images/x.jpg`` is ``.../labels/x.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


class FileCheck:
    """Checks images one by one, remembering their contents to find duplicates; skips or fails per ``on_error``."""

    def __init__(self, on_error: str, key: tuple[str | int, ...], report: DataReport) -> None:
        self.on_error, self.key, self.report = on_error, key, report
        self.seen: dict[str, str] = {}

    def row(self, image: Path, boxes: Iterable[Box] | None = None, *, names: Sequence[str] = ()) -> dict[str, Any] | None:
        """The row of ``image`` (its boxes read from its label file unless given), or None when skipped."""
        try:
            content = image.read_bytes()  # read once: decoded for the check, hashed for duplicates
            image_size(image, content)
            digest = hashlib.sha1(content).hexdigest()
            if digest in self.seen:
                raise BadFile(str(image), f"duplicate of {self.seen[digest]}")
            labels = list(boxes) if boxes is not None else parse_label_file(label_path(image), names)
        except BadFile as bad:
            if self.on_error == "fail":
                raise RecipeRuntimeError(self.key, f"{bad} (data.on_error: skip leaves such files out)") from bad
            self.report.skip(bad.where, bad.why)
            return None
        self.seen[digest] = str(image)
        return {"image": str(image), "labels": labels, "where": str(image)}


def images_in(source: Path) -> list[Path]:
    """The images a split names: a folder (searched recursively), a ``.txt`` list of paths, or one image."""
    if source.is_dir():
        from ftrecipe.plugin import image_files

        return image_files(source, recursive=True)
    if source.suffix == ".txt":
        lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(source.parent / line).resolve() if not Path(line).is_absolute() else Path(line) for line in lines]
    return [source]


# -- the report ----------------------------------------------------------------------------------

def complete_report(splits: DatasetSplits, names: Sequence[str]) -> DatasetSplits:
    """Per-class image and box counts, background images, and the seed's guidance as a warning."""
    report = splits.report
    for split, rows in (("train", splits.train), ("eval", splits.eval or [])):
        boxes = Counter(label[0] for row in rows for label in row["labels"])
        images = Counter(name for row in rows for name in {label[0] for label in row["labels"]})
        report.details[f"{split}_boxes_per_class"] = {name: boxes[name] for name in names if boxes[name]}
        report.details[f"{split}_images_per_class"] = {name: images[name] for name in names if images[name]}
        report.details[f"{split}_background_images"] = sum(1 for row in rows if not row["labels"])
    report.details["classes"] = list(names)
    if len(splits.train) < SEED_GUIDANCE:
        report.warnings.append(
            f"{len(splits.train)} training images: fine-tuning a detector needs about {SEED_GUIDANCE} labelled images "
            "(the seed's guidance); expect a weak model")
    return splits


# -- the formats ---------------------------------------------------------------------------------

def read_yolo(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: yolo``: an Ultralytics data YAML and the YOLO label files beside its images."""
    from ruamel.yaml import YAML, YAMLError

    key = ("data", "yaml")
    path = (base_dir / Path(section.yaml).expanduser()).resolve()
    if not path.is_file():
        raise RecipeRuntimeError(key, f"no data YAML at {path}")
    try:
        spec = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except YAMLError as error:
        raise RecipeRuntimeError(key, f"{path} is not valid YAML: {error}") from error
    names = _names(spec.get("names"), key, path)
    root = Path(spec.get("path") or path.parent)
    root = root if root.is_absolute() else (path.parent / root).resolve()
    report = DataReport()
    check = FileCheck(section.on_error, key, report)

    def split(name: str) -> list[dict[str, Any]] | None:
        entry = spec.get(name)
        if not entry:
            return None
        rows = []
        for source in entry if isinstance(entry, list) else [entry]:
            folder = (root / source).resolve()
            if not folder.exists():
                raise RecipeRuntimeError(key, f"{path}: {name}: {folder} does not exist")
            rows += [row for image in images_in(folder) if (row := check.row(image, names=names)) is not None]
        return rows

    train, held = split("train"), split("val")
    if not train:
        raise RecipeRuntimeError(key, f"{path}: no training images (train: {spec.get('train')!r})")
    splits = make_splits(section, train, held, seed=seed, smoke=smoke, files=[path], report=report)
    return complete_report(splits, names)


def read_coco(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: coco``: COCO JSON converted to YOLO labels by Ultralytics' ``convert_coco``."""
    images = (base_dir / Path(section.images).expanduser()).resolve()
    if not images.is_dir():
        raise RecipeRuntimeError(("data", "images"), f"no image folder at {images}")
    report = DataReport()
    names: list[str] | None = None
    parts: dict[str, list[dict[str, Any]] | None] = {"train": None, "eval": None}
    files: list[Path] = []
    for split in ("train", "eval"):
        sources = source_paths(section, split, base_dir) if getattr(section, split) else []
        if not sources:
            continue
        check = FileCheck(section.on_error, ("data", split), report)
        rows: list[dict[str, Any]] = []
        for json_path, key in sources:
            split_names, labelled = _convert_coco(json_path, key)
            if names is not None and split_names != names:
                raise RecipeRuntimeError(key, f"{json_path.name}: categories differ from the training file's")
            names = split_names
            files.append(json_path)
            for file_name, boxes in labelled:
                image = images / file_name
                if not image.is_file():
                    if section.on_error == "fail":
                        raise RecipeRuntimeError(key, f"{json_path.name}: image {file_name} is not in {images}")
                    report.skip(str(image), "image missing")
                    continue
                if (row := check.row(image, boxes)) is not None:
                    rows.append(row)
        parts[split] = rows
    if names is None or not parts["train"]:
        raise RecipeRuntimeError(("data", "train"), "no training images: name the COCO JSON of the training split")
    splits = make_splits(section, parts["train"], parts["eval"], seed=seed, smoke=smoke, files=files, report=report)
    return complete_report(splits, names)


def _convert_coco(json_path: Path, key: tuple[str | int, ...]) -> tuple[list[str], list[tuple[str, list[Box]]]]:
    """Class names and (file name, boxes) of every image of one COCO JSON file, through Ultralytics' converter."""
    import json

    from ftrecipe_yolo.offline import ultralytics

    ultralytics()
    from ultralytics.data.converter import convert_coco

    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = [str(image["file_name"]) for image in data["images"]]
    except (ValueError, KeyError, TypeError) as error:
        raise RecipeRuntimeError(key, f"{json_path} is not COCO JSON: {error}") from error
    if not categories or min(categories) < 1:
        raise RecipeRuntimeError(key, f"{json_path}: COCO category ids start at 1")
    names = [categories.get(i, f"unused-{i}") for i in range(1, max(categories) + 1)]
    with tempfile.TemporaryDirectory(prefix="ftrecipe-coco-") as scratch:
        source = Path(scratch) / "annotations"
        source.mkdir()
        (source / json_path.name).symlink_to(json_path)
        convert_coco(str(source), str(Path(scratch) / "converted"), use_segments=False, cls91to80=False)
        labels = Path(scratch) / "converted" / "labels" / json_path.stem.replace("instances_", "")
        labelled = []
        for file_name in images:
            label = labels / Path(file_name).with_suffix(".txt").name
            try:
                boxes = parse_label_file(label, names)
            except BadFile as bad:
                raise RecipeRuntimeError(key, f"{json_path.name}: {file_name}: {bad.why}") from bad
            labelled.append((file_name, boxes))
    return names, labelled


def _names(value: Any, key: tuple[str | int, ...], path: Path) -> list[str]:
    if isinstance(value, dict) and value and all(isinstance(k, int) for k in value):
        if sorted(value) != list(range(len(value))):
            raise RecipeRuntimeError(key, f"{path}: names must be numbered 0 to {len(value) - 1}")
        return [str(value[i]) for i in range(len(value))]
    if isinstance(value, list) and value:
        return [str(v) for v in value]
    raise RecipeRuntimeError(key, f"{path}: 'names' must list the class names")


def read_synthetic(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: synthetic``: the demo's drawn shapes (pixels in the rows; staged as PNG files)."""
    from ftrecipe_yolo.synthetic import draw_split

    train = draw_split(section, seed=seed, count=section.train_size, split="train")
    held = draw_split(section, seed=seed + 1, count=section.eval_size, split="eval")
    splits = make_splits(section, train, held, seed=seed, smoke=smoke)
    return complete_report(splits, list(section.classes))
