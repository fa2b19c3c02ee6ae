"""Readers of the image-classification formats: a folder per class, Hugging Face's imagefolder, a manifest,
and drawn shapes.

A row is ``Row({"image": path, "label": class name}, where)``. Every picture is decoded once here
(:func:`ftrecipe.plugin.check_image`): an unreadable, truncated or too small one is listed in the data
report with the reason and left out (``data.on_error: skip``), or stops the run at the recipe key that
named it (``fail``). Rows are interleaved class by class, so that ``data.limit`` and ``--smoke`` keep every
class. The report counts pictures per class and warns below :data:`MIN_IMAGES_PER_CLASS`.
"""

from __future__ import annotations

from collections import Counter
from itertools import chain, zip_longest
from pathlib import Path
from typing import Any

from ftrecipe.plugin import (
    DataReport,
    DatasetSplits,
    ImageProblem,
    RecipeRuntimeError,
    Row,
    check_image,
    image_files,
    make_splits,
    read_rows,
    require_source,
    source_paths,
)
from ftrecipe_vision.classification.sections import MIN_IMAGES_PER_CLASS, RECOMMENDED_IMAGES_PER_CLASS

Key = tuple[str | int, ...]

#: Hugging Face imagefolder's split folder names (datasets' ``KEYWORDS_IN_DIR_NAME_BASE``), by split.
SPLIT_FOLDERS = {"train": ("train", "training"), "validation": ("validation", "valid", "val", "dev"),
                 "test": ("test", "testing", "eval", "evaluation")}
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
IMAGE_COLUMNS = ("image", "path", "file", "file_name", "filename", "filepath", "image_path")
LABEL_COLUMNS = ("label", "class", "category", "labels")


class Checker:
    """Checks pictures one by one: usable ones become rows, the others are skipped into the report or fatal."""

    def __init__(self, section: Any, report: DataReport) -> None:
        self.section, self.report = section, report
        self.files: list[Path] = []

    def bad(self, where: str, why: str, key: Key) -> None:
        if self.section.on_error == "fail":
            raise RecipeRuntimeError(key, f"{where}: {why} (data.on_error: skip leaves such pictures out)")
        self.report.skip(where, why)

    def row(self, path: Path, label: Any, key: Key, where: str | None = None) -> Row | None:
        where = where or str(path)
        if label is None or str(label).strip() == "":
            self.bad(where, "no label", key)
            return None
        if not path.is_file():
            self.bad(where, f"no such picture: {path}", key)
            return None
        try:
            check_image(path, self.section.min_size)
        except ImageProblem as problem:
            self.bad(where, problem.why, key)
            return None
        self.files.append(path)
        return Row({"image": str(path), "label": str(label).strip()}, where)


def interleave(rows: list[Row]) -> list[Row]:
    """Rows class by class in turn (each class in its own order): the first N rows hold every class."""
    by_class: dict[str, list[Row]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row)
    return [row for group in zip_longest(*(by_class[name] for name in sorted(by_class))) for row in group if row is not None]


def complete(splits: DatasetSplits, classes: list[str]) -> DatasetSplits:
    """Pictures per class in each split, the classes found, and the per-class guidance as a warning."""
    report = splits.report
    report.details["classes"] = classes
    for split, rows in (("train", splits.train), ("eval", splits.eval or [])):
        counts = Counter(row["label"] for row in rows)
        report.details[f"{split}_images_per_class"] = {name: counts[name] for name in sorted(counts)}
    train = report.details["train_images_per_class"]
    few = [f"{name} ({train.get(name, 0)})" for name in classes if train.get(name, 0) < MIN_IMAGES_PER_CLASS]
    if few:
        report.warnings.append(
            f"few training pictures for {', '.join(few)}: a classifier needs at least {MIN_IMAGES_PER_CLASS} per class and "
            f"{RECOMMENDED_IMAGES_PER_CLASS} or more to be reliable (Google AutoML Vision's guidance); expect a weak model")
    return splits


def _splits(section: Any, train: list[Row], held: list[Row] | None, checker: Checker, report: DataReport, *, seed: int,
            smoke: bool, extra_files: list[Path] = ()) -> DatasetSplits:
    if not train:
        reasons = "; ".join(f"{where}: {why}" for where, why in list(report.skipped.items())[:3])
        raise RecipeRuntimeError(("data", "train"), "no usable training picture" + (f" ({reasons})" if reasons else ""))
    classes = sorted({row["label"] for row in train})
    splits = make_splits(section, interleave(train), interleave(held) if held is not None else None, seed=seed, smoke=smoke,
                         files=[*extra_files, *checker.files], report=report)
    return complete(splits, classes)


# -- a folder per class (torchvision's ImageFolder) ---------------------------------------------------------

def class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def folder_rows(root: Path, key: Key, checker: Checker) -> list[Row]:
    """Every picture under ``root/<class>/`` (at any depth), labelled with its class folder's name."""
    if not root.is_dir():
        raise RecipeRuntimeError(key, f"{root} is not a folder (format folder wants one folder per class)")
    classes = class_folders(root)
    if not classes:
        raise RecipeRuntimeError(key, f"{root} holds no class folders: put each class's pictures in a folder named "
                                      f"after it ({root}/cat/*.jpg, {root}/dog/*.jpg)")
    rows = []
    for folder in classes:
        found = image_files(folder, recursive=True)
        if not found:
            checker.report.warnings.append(f"class folder {folder} holds no pictures: the class is left out")
        rows += [row for path in found if (row := checker.row(path, folder.name, key)) is not None]
    return rows


def read_folder(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: folder``: ``train`` (and ``eval``) hold one folder per class."""
    require_source(section)
    report = DataReport()
    checker = Checker(section, report)
    train = [row for root, key in source_paths(section, "train", base_dir) for row in folder_rows(root, key, checker)]
    held = None
    if section.eval is not None:
        held = [row for root, key in source_paths(section, "eval", base_dir) for row in folder_rows(root, key, checker)]
    return _splits(section, train, held, checker, report, seed=seed, smoke=smoke)


# -- Hugging Face imagefolder --------------------------------------------------------------------------------

def split_folders(root: Path) -> dict[str, Path]:
    """``{"train": ..., "validation": ..., "test": ...}`` for the split folders ``root`` has (may be empty)."""
    found: dict[str, Path] = {}
    for child in class_folders(root):
        for split, names in SPLIT_FOLDERS.items():
            if child.name.lower() in names and split not in found:
                found[split] = child
    return found


def imagefolder_rows(folder: Path, key: Key, checker: Checker, label_column: str) -> tuple[list[Row], list[Path]]:
    """One split of an imagefolder: labels from a metadata file where there is one, else from each picture's folder."""
    metadata = next((folder / name for name in METADATA_FILES if (folder / name).is_file()), None)
    rows: list[Row] = []
    if metadata is not None:
        for record in read_rows(metadata, key, checker.section.on_error, checker.report):
            name = record.get("file_name")
            if not name:
                checker.bad(record.where, "no file_name", key)
                continue
            row = checker.row(folder / str(name), record.get(label_column), key, where=f"{record.where} ({name})")
            if row is not None:
                rows.append(row)
        return rows, [metadata]
    for path in image_files(folder, recursive=True):
        label = path.parent.name if path.parent != folder else None
        if label is None:
            checker.bad(str(path), "no label: imagefolder takes it from the picture's folder (or a metadata.csv)", key)
            continue
        if (row := checker.row(path, label, key)) is not None:
            rows.append(row)
    return rows, []


def read_imagefolder(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: imagefolder``: the layout ``datasets.load_dataset("imagefolder", data_dir=...)`` reads, read here
    without ``datasets`` (no cache written, no network)."""
    require_source(section)
    report = DataReport()
    checker = Checker(section, report)
    label_column = section.columns.get("label", "label")
    train: list[Row] = []
    held: list[Row] | None = None
    metadata: list[Path] = []
    for root, key in source_paths(section, "train", base_dir):
        if not root.is_dir():
            raise RecipeRuntimeError(key, f"{root} is not a folder (format imagefolder wants the dataset's folder)")
        splits = split_folders(root)
        if splits and "train" not in splits:
            raise RecipeRuntimeError(key, f"{root} has split folders ({', '.join(p.name for p in splits.values())}) but no train/")
        rows, files = imagefolder_rows(splits.get("train", root), key, checker, label_column)
        train += rows
        metadata += files
        held_folder = splits.get("validation") or splits.get("test")
        if held_folder is not None and section.eval is None:
            rows, files = imagefolder_rows(held_folder, key, checker, label_column)
            held = (held or []) + rows
            metadata += files
    if section.eval is not None:
        held = []
        for root, key in source_paths(section, "eval", base_dir):
            rows, files = imagefolder_rows(root, key, checker, label_column)
            held += rows
            metadata += files
    return _splits(section, train, held, checker, report, seed=seed, smoke=smoke, extra_files=metadata)


# -- a manifest ----------------------------------------------------------------------------------------------

def _column(section: Any, rows: list[Row], canonical: str, guesses: tuple[str, ...], key: Key, path: Path) -> str:
    if canonical in section.columns:
        return section.columns[canonical]
    present = set(chain.from_iterable(rows[:50]))
    found = next((name for name in guesses if name in present), None)
    if found is None:
        raise RecipeRuntimeError(("data", "columns"), f"{path}: no {canonical} column (looked for {', '.join(guesses)}; "
                                                      f"it has {', '.join(sorted(present)) or 'none'}): name it in columns.{canonical}")
    return found


def manifest_rows(section: Any, sources: list[tuple[Path, Key]], checker: Checker) -> tuple[list[Row], list[Path]]:
    rows: list[Row] = []
    for path, key in sources:
        if path.is_dir():
            raise RecipeRuntimeError(key, f"{path} is a folder; format manifest reads a CSV or JSONL file (use format folder)")
        records = read_rows(path, key, checker.section.on_error, checker.report)
        if not records:
            continue
        image_column = _column(section, records, "image", IMAGE_COLUMNS, key, path)
        label_column = _column(section, records, "label", LABEL_COLUMNS, key, path)
        for record in records:
            value = record.get(image_column)
            if not value:
                checker.bad(record.where, f"no picture in column '{image_column}'", key)
                continue
            image = Path(str(value)).expanduser()
            image = image if image.is_absolute() else path.parent / image
            if (row := checker.row(image, record.get(label_column), key, where=f"{record.where} ({value})")) is not None:
                rows.append(row)
    return rows, [path for path, _ in sources]


def read_manifest(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: manifest``: rows of picture paths and labels."""
    require_source(section)
    report = DataReport()
    checker = Checker(section, report)
    train, files = manifest_rows(section, source_paths(section, "train", base_dir), checker)
    held = None
    if section.eval is not None:
        held, more = manifest_rows(section, source_paths(section, "eval", base_dir), checker)
        files += more
    return _splits(section, train, held, checker, report, seed=seed, smoke=smoke, extra_files=files)


# -- drawn shapes --------------------------------------------------------------------------------------------

def drawn(seed: int, start: int, count: int, section: Any) -> list[Row]:
    """``count`` pictures from index ``start`` on, each with the one shape it shows as its label."""
    from ftrecipe.plugin import draw_shapes

    rows = []
    for index in range(start, start + count):
        image, boxes = draw_shapes(seed, index, size=section.size, classes=list(section.classes), scale=tuple(section.scale))
        rows.append(Row({"image": image, "label": boxes[0][0]}, f"synthetic:{index}"))
    return rows


def read_synthetic(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """``format: synthetic``: ``train_size`` drawn pictures, and ``eval_size`` others (later indices)."""
    report = DataReport()
    train, held = drawn(seed, 0, section.train_size, section), drawn(seed, section.train_size, section.eval_size, section)
    splits = make_splits(section, interleave(train), held, seed=seed, smoke=smoke, report=report)
    return complete(splits, sorted(section.classes))
