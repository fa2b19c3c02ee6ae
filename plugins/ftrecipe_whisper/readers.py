"""Dataset-format readers of the Whisper plugin: manifests, audio folders and synthetic speech.

Rows carry ``audio`` (a file path, a float32 wave, or a ``SyntheticClip`` rendered when first heard), ``sample_rate``,
``text`` (normalised per ``data.normalize``), ``speaker``, ``duration`` and ``groups`` (the values of
the ``data.group_by`` columns). The data report (clips, hours,
per-speaker hours, sample rates, skipped clips and why) comes from the manifest reader.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ftrecipe.plugin import (
    SMOKE_EVAL_EXAMPLES,
    SMOKE_TRAIN_EXAMPLES,
    DataReport,
    DatasetSplits,
    RecipeRuntimeError,
    require_source,
    select_examples,
    source_paths,
)
from ftrecipe_whisper.manifest import MIN_HOURS_GUIDANCE, GroupColumnError, ManifestError, audio_totals, read_audiofolder, read_manifest
from ftrecipe_whisper.normalize import normalize_text


def duration_cache_path() -> Path:
    """Durations are probed once per file and remembered here (keyed by path, size and mtime)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ftrecipe" / "audio-durations.json"


def _normalize(section: Any, text: str) -> str:
    n = section.normalize
    return normalize_text(text, lowercase=n.lowercase, punctuation=n.punctuation, numbers=n.numbers)


def _rows(section: Any, clips: list) -> list[dict[str, Any]]:
    return [
        {"audio": str(c.audio_path), "sample_rate": c.sample_rate, "text": _normalize(section, c.transcript),
         "speaker": c.speaker, "duration": c.duration, "groups": dict(c.groups)}
        for c in clips
    ]


def _audio_details(report: DataReport, clips: list[Any], *, note: str = "") -> None:
    """Hours, per-speaker hours and sample rates of the training clips used; the 50 h guidance."""
    hours, per_speaker, rates = audio_totals(clips)
    report.details.update({
        "total_hours": round(hours, 4),
        "speaker_hours": {k: round(v, 4) for k, v in per_speaker.items()},
        "sample_rates": {str(rate): n for rate, n in rates.items()},
    })
    if hours < MIN_HOURS_GUIDANCE:
        report.warnings.append(f"only {hours:.2f} h of training audio{note}; about {MIN_HOURS_GUIDANCE:g} h or more "
                               "is advised for a robust Whisper fine-tune")


def _read(section: Any, base_dir: Path, *, smoke: bool, seed: int, folder: bool) -> DatasetSplits:
    read = read_audiofolder if folder else read_manifest
    options = {"columns": section.columns or None, "max_seconds": section.max_seconds, "on_error": section.on_error,
               "cache": duration_cache_path(), "group_by": section.group_columns}
    duration_cache_path().parent.mkdir(parents=True, exist_ok=True)
    require_source(section, "train")
    report = DataReport()

    def load(key: str) -> tuple[list, list[Path]]:
        clips, files = [], []
        for path, where in source_paths(section, key, base_dir):
            try:
                found, manifest = read(path, **options)
            except GroupColumnError as error:  # the recipe's group_by is what to fix, not the file
                raise RecipeRuntimeError(("data", "group_by"), str(error)) from error
            except ManifestError as error:
                raise RecipeRuntimeError(where, str(error)) from error
            clips += found
            files += [path] if path.is_file() else []
            for clip, why in manifest.skipped.items():
                report.skip(clip, why)
        return clips, files

    train, files = load("train")
    evaluation = None
    if section.eval is not None:
        evaluation, more = load("eval")
        files += more
    train, evaluation = select_examples(section, train, evaluation, seed=seed, smoke=smoke)
    files += sorted({c.audio_path for c in train + evaluation})
    report.train_examples, report.eval_examples = len(train), len(evaluation)
    _audio_details(report, train)
    return DatasetSplits(_rows(section, train), _rows(section, evaluation) or None, files, report)


def read_manifest_format(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    return _read(section, base_dir, smoke=smoke, seed=seed, folder=False)


def read_audiofolder_format(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    return _read(section, base_dir, smoke=smoke, seed=seed, folder=True)


def read_synthetic(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """Synthetic tone-coded speech at 16 kHz; evaluation clips come from another seed. Each clip is rendered
    when first heard (a plan reads a thousand clips' lengths and transcripts in a fraction of a second)."""
    from ftrecipe_whisper.synthetic import SyntheticClip, synthetic_durations

    # no more clips than a smoke run or data.limit keeps
    n_train = min(section.train_size, section.limit or section.train_size, SMOKE_TRAIN_EXAMPLES if smoke else section.train_size)
    n_eval = min(section.eval_size, SMOKE_EVAL_EXAMPLES) if smoke else section.eval_size

    def rows(n: int, offset: int) -> list[dict[str, Any]]:
        return [
            {"audio": SyntheticClip(seed + offset, i, section.max_words), "sample_rate": 16_000, "text": text,
             "speaker": None, "duration": seconds, "groups": {}}
            for i, (seconds, text) in enumerate(synthetic_durations(n, seed=seed + offset, max_words=section.max_words))
        ]

    train, evaluation = rows(n_train, 0), rows(n_eval, 10_000)
    report = DataReport(train_examples=len(train), eval_examples=len(evaluation))
    _audio_details(report, [SimpleNamespace(**row) for row in train], note=" (synthetic demo data)")
    return DatasetSplits(train, evaluation, [], report)
