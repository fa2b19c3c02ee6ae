"""Dataset-format readers of the text plugin: files, Hugging Face datasets, synthetic data, sql-eval.

Each returns :class:`ftrecipe.plugin.DatasetSplits` of raw rows; the tasks render and tokenise them.
The shared chores (sources and their recipe keys, bad lines, hold-out, limit, smoke caps, the data
report) are the core's, so every format behaves alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftrecipe.plugin import (
    ROW_FILE_SUFFIXES,
    DataReport,
    DatasetSplits,
    RecipeRuntimeError,
    make_splits,
    read_rows,
    require_source,
    source_paths,
)


def _read_sources(section: Any, key: str, base_dir: Path, report: DataReport) -> tuple[list[dict[str, Any]], list[Path]]:
    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    for path, where in source_paths(section, key, base_dir):
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in ROW_FILE_SUFFIXES) if path.is_dir() else [path]
        if not found:
            raise RecipeRuntimeError(where, f"{path} holds no {', '.join(ROW_FILE_SUFFIXES)} file")
        for file in found:
            rows.extend(read_rows(file, where, section.on_error, report))
            files.append(file)
    return rows, files


def read_files(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """JSONL / JSON / CSV / TSV / Parquet files (or folders of them) for ``train`` and ``eval``."""
    require_source(section, "train")
    report = DataReport()
    train, files = _read_sources(section, "train", base_dir, report)
    eval_rows = None
    if section.eval is not None:
        eval_rows, more = _read_sources(section, "eval", base_dir, report)
        files += more
    return make_splits(section, train, eval_rows, seed=seed, smoke=smoke, files=files, report=report)


def read_hf(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """A ``save_to_disk`` folder, or a dataset id (needs the hub or its cache)."""
    import datasets

    if section.train is None or isinstance(section.train, list):
        raise RecipeRuntimeError(("data", "train"), "format hf needs one dataset id or folder as train")
    local = (base_dir / section.train).expanduser()
    try:
        if local.is_dir():
            loaded = datasets.load_from_disk(str(local))
        else:
            loaded = datasets.load_dataset(section.train, section.subset)
    except (FileNotFoundError, ValueError, ConnectionError) as error:
        raise RecipeRuntimeError(("data", "train"), f"cannot load dataset {section.train}: {error}") from error
    if isinstance(loaded, datasets.Dataset):
        train, eval_rows = loaded.to_list(), None
    else:
        if section.train_split not in loaded:
            raise RecipeRuntimeError(("data", "train_split"), f"no split '{section.train_split}' (splits: {', '.join(loaded)})")
        train = loaded[section.train_split].to_list()
        if section.eval_split is not None and section.eval_split not in loaded:
            raise RecipeRuntimeError(("data", "eval_split"), f"no split '{section.eval_split}' (splits: {', '.join(loaded)})")
        eval_rows = loaded[section.eval_split].to_list() if section.eval_split else None
    return make_splits(section, train, eval_rows, seed=seed, smoke=smoke)


def read_synthetic_sql(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """Template-made question/SQL pairs; train and eval come from different seeds."""
    from ftrecipe_text.synthetic import synthetic_sql

    train = synthetic_sql(section.train_size, seed=seed)
    seen = {row["question"] for row in train}
    candidates = synthetic_sql(section.eval_size * 20, seed=seed + 10_000)  # many repeat training questions
    eval_rows = [row for row in candidates if row["question"] not in seen][: section.eval_size]
    return make_splits(section, train, eval_rows, seed=seed, smoke=smoke)


def read_sql_eval(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """defog sql-eval: questions with gold SQL, the inferred schema of their database in the prompt."""
    from ftrecipe_text.sql_eval import QUESTION_FILES, load_sql_eval

    root = (base_dir / section.root).resolve()
    if not root.is_dir():
        raise RecipeRuntimeError(("data", "root"), f"sql-eval folder not found: {root}")
    try:
        rows = load_sql_eval(root)
    except (FileNotFoundError, ValueError) as error:
        raise RecipeRuntimeError(("data", "root"), str(error)) from error
    files = [root / QUESTION_FILES["questions"], *sorted((root / "metadata").glob("*.json"))]
    return make_splits(section, rows, None, seed=seed, smoke=smoke, files=files)


def read_synthetic_sentiment(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """Short sentences whose sentiment follows from their words (offline classification demo)."""
    import random

    positive = ["love", "great", "excellent", "happy", "wonderful", "fantastic", "good", "amazing"]
    negative = ["hate", "awful", "terrible", "sad", "horrible", "bad", "boring", "broken"]
    subjects = ["the phone", "this movie", "my order", "the service", "the app", "the flight", "dinner", "the update"]
    frames = ["{s} is {w}", "i think {s} was {w}", "{w}! {s}", "honestly {s} feels {w}", "{s}, {w} as always"]

    def rows(n: int, rng: random.Random) -> list[dict[str, str]]:
        out = []
        for _ in range(n):
            label = rng.choice(["positive", "negative"])
            word = rng.choice(positive if label == "positive" else negative)
            out.append({"text": rng.choice(frames).format(s=rng.choice(subjects), w=word), "label": label})
        return out

    train = rows(section.train_size, random.Random(seed))
    eval_rows = rows(section.eval_size, random.Random(seed + 10_000))
    return make_splits(section, train, eval_rows, seed=seed, smoke=smoke)
