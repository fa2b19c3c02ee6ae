"""Dataset-format readers of the text plugin: files, Hugging Face datasets, synthetic data, sql-eval.

Each returns :class:`ftrecipe.data.DatasetSplits` of raw rows; the tasks render and tokenise them.
A missing source is a :class:`~ftrecipe.errors.RecipeRuntimeError` at the recipe key that named it;
a corrupt record is skipped and counted, or fails the run, per ``data.on_error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftrecipe.data import ROW_FILE_SUFFIXES, DatasetSplits, RowFileError, iter_rows, resolve_sources, split_holdout
from ftrecipe.errors import RecipeRuntimeError

SMOKE_TRAIN, SMOKE_EVAL = 16, 8


def _read_file(path: Path, on_error: str, skipped: dict[str, str], key: tuple) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()

    def skip(error: RowFileError) -> None:
        skipped[f"{path.name}:{error.line}"] = error.message

    try:
        return [row for _, row in iter_rows(path, None if on_error == "fail" else skip)]
    except RowFileError as error:
        message = f"{error.path}:{error.line}: corrupt record: {error.message}" if error.line else str(error)
        raise RecipeRuntimeError(key, message) from error


def _read_sources(sources: str | list[str] | None, key: tuple, base_dir: Path, on_error: str, skipped: dict) -> tuple[list, list[Path]]:
    rows: list[dict[str, Any]] = []
    paths = resolve_sources(sources, base_dir)
    files: list[Path] = []
    for index, path in enumerate(paths):
        where = key + ((index,) if isinstance(sources, list) else ())
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in (*ROW_FILE_SUFFIXES, ".parquet"))
            if not found:
                raise RecipeRuntimeError(where, f"{path} holds no .jsonl, .csv or .parquet file")
        elif path.is_file():
            found = [path]
        else:
            raise RecipeRuntimeError(where, f"no such file or directory: {path}")
        for file in found:
            rows.extend(_read_file(file, on_error, skipped, where))
            files.append(file)
    return rows, files


def _finish(section: Any, train: Sequence, eval_rows: Sequence | None, *, seed: int, smoke: bool, files: list[Path], skipped: dict) -> DatasetSplits:
    if section.limit:
        train = list(train)[: section.limit]
    if eval_rows is None:
        train, eval_rows = split_holdout(train, section.eval_fraction, seed)
    if smoke:
        train, eval_rows = list(train)[:SMOKE_TRAIN], list(eval_rows or [])[:SMOKE_EVAL]
    report: dict[str, Any] = {"train_examples": len(train), "eval_examples": len(eval_rows or [])}
    if skipped:
        report["skipped"] = len(skipped)
        report["skipped_examples"] = dict(list(skipped.items())[:50])
    return DatasetSplits(list(train), list(eval_rows) if eval_rows else None, files, report)


def read_files(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """JSONL / CSV / Parquet files (or folders of them) for ``train`` and ``eval``."""
    if section.train is None:
        raise RecipeRuntimeError(("data", "train"), f"format {section.format} needs a train source")
    skipped: dict[str, str] = {}
    train, files = _read_sources(section.train, ("data", "train"), base_dir, section.on_error, skipped)
    eval_rows = None
    if section.eval is not None:
        eval_rows, more = _read_sources(section.eval, ("data", "eval"), base_dir, section.on_error, skipped)
        files += more
    return _finish(section, train, eval_rows, seed=seed, smoke=smoke, files=files, skipped=skipped)


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
        eval_rows = loaded[section.eval_split].to_list() if section.eval_split else None
    return _finish(section, train, eval_rows, seed=seed, smoke=smoke, files=[], skipped={})


def read_synthetic_sql(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """Template-made question/SQL pairs; train and eval come from different seeds."""
    from ftrecipe_text.synthetic import synthetic_sql

    train = synthetic_sql(section.train_size, seed=seed)
    seen = {row["question"] for row in train}
    candidates = synthetic_sql(section.eval_size * 20, seed=seed + 10_000)  # many repeat training questions
    eval_rows = [row for row in candidates if row["question"] not in seen][: section.eval_size]
    return _finish(section, train, eval_rows, seed=seed, smoke=smoke, files=[], skipped={})


def read_sql_eval(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """defog sql-eval: questions with gold SQL, the inferred schema of their database in the prompt."""
    from ftrecipe_text.sql_eval import QUESTION_FILES, load_sql_eval

    root = (base_dir / section.root).resolve()
    if not root.is_dir():
        raise RecipeRuntimeError(("data", "root"), f"sql-eval folder not found: {root}")
    rows = load_sql_eval(root)
    files = [root / QUESTION_FILES["questions"]]
    return _finish(section, rows, None, seed=seed, smoke=smoke, files=files, skipped={})


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
    return _finish(section, train, eval_rows, seed=seed, smoke=smoke, files=[], skipped={})
