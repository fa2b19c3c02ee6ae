"""Dataset-format readers of the Whisper plugin: manifests, audio folders and synthetic speech.

Rows carry ``audio`` (a file path, or a float32 wave for synthetic data), ``sample_rate``,
``text`` (normalised per ``data.normalize``) and ``speaker``. The data report (clips, hours,
per-speaker hours, sample rates, skipped clips and why) comes from the manifest reader.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ftrecipe.data import DatasetSplits, resolve_sources, split_holdout
from ftrecipe.errors import RecipeRuntimeError
from ftrecipe_whisper.manifest import MIN_HOURS_GUIDANCE, DataReport, ManifestError, read_audiofolder, read_manifest
from ftrecipe_whisper.normalize import normalize_text

SMOKE_TRAIN, SMOKE_EVAL = 16, 8


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
         "speaker": c.speaker, "duration": c.duration}
        for c in clips
    ]


def _report(train: DataReport, eval_clips: int) -> dict[str, Any]:
    report = train.to_dict()
    report["train_examples"] = report.pop("clips")
    report["eval_examples"] = eval_clips
    report["skipped_examples"] = report.pop("skipped")
    report["skipped"] = report.pop("skipped_count")
    if report.pop("warning"):
        report["warnings"] = [train.warning]
    return report


def _read(section: Any, base_dir: Path, *, smoke: bool, seed: int, folder: bool) -> DatasetSplits:
    read = read_audiofolder if folder else read_manifest
    options = {"columns": section.columns or None, "max_seconds": section.max_seconds, "on_error": section.on_error,
               "cache": duration_cache_path()}
    duration_cache_path().parent.mkdir(parents=True, exist_ok=True)

    def load(key: str, sources: Any) -> tuple[list, list[Path], DataReport | None]:
        clips, files, reports = [], [], []
        for index, path in enumerate(resolve_sources(sources, base_dir)):
            where = ("data", key) + ((index,) if isinstance(sources, list) else ())
            try:
                found, report = read(path, **options)
            except ManifestError as error:
                raise RecipeRuntimeError(where, str(error)) from error
            clips += found
            reports.append(report)
            files += [path] if path.is_file() else []
        return clips, files, reports[0] if len(reports) == 1 else None

    if section.train is None:
        raise RecipeRuntimeError(("data", "train"), f"format {section.format} needs a train source")
    train, files, train_report = load("train", section.train)
    if section.eval is not None:
        evaluation, more, _ = load("eval", section.eval)
        files += more
    else:
        train, evaluation = split_holdout(train, section.eval_fraction, seed)
    if section.limit:
        train = train[: section.limit]
    if smoke:
        train, evaluation = train[:SMOKE_TRAIN], evaluation[:SMOKE_EVAL]
    files += sorted({c.audio_path for c in train + evaluation})
    report = _summarise(train, train_report)
    return DatasetSplits(_rows(section, train), _rows(section, evaluation) or None, files, _report(report, len(evaluation)))


def _summarise(clips: list, source: DataReport | None) -> DataReport:
    """The report of the clips actually used (after hold-out and limits), keeping what was skipped."""
    from collections import Counter, defaultdict

    speakers: dict[str, float] = defaultdict(float)
    for c in clips:
        if c.speaker is not None:
            speakers[c.speaker] += c.duration / 3600
    hours = sum(c.duration for c in clips) / 3600
    warning = None
    if hours < MIN_HOURS_GUIDANCE:
        warning = (
            f"only {hours:.2f} h of training audio; about {MIN_HOURS_GUIDANCE:g} h or more is advised "
            "for a robust Whisper fine-tune"
        )
    return DataReport(
        clips=len(clips),
        total_hours=round(hours, 4),
        speaker_hours={k: round(v, 4) for k, v in sorted(speakers.items())},
        sample_rates=dict(sorted(Counter(c.sample_rate for c in clips).items())),
        skipped=source.skipped if source is not None else {},
        warning=warning,
    )


def read_manifest_format(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    return _read(section, base_dir, smoke=smoke, seed=seed, folder=False)


def read_audiofolder_format(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    return _read(section, base_dir, smoke=smoke, seed=seed, folder=True)


def read_synthetic(section: Any, *, base_dir: Path, seed: int, smoke: bool) -> DatasetSplits:
    """Synthetic tone-coded speech at 16 kHz; evaluation clips come from another seed."""
    from ftrecipe_whisper.synthetic import synthetic_clips

    n_train, n_eval = (SMOKE_TRAIN, SMOKE_EVAL) if smoke else (section.train_size, section.eval_size)

    def rows(n: int, offset: int) -> list[dict[str, Any]]:
        return [
            {"audio": wave, "sample_rate": 16_000, "text": text, "speaker": None, "duration": len(wave) / 16_000}
            for wave, text in synthetic_clips(n, seed=seed + offset, max_words=section.max_words)
        ]

    train, evaluation = rows(n_train, 0), rows(n_eval, 10_000)
    hours = sum(r["duration"] for r in train) / 3600
    report = {"train_examples": len(train), "eval_examples": len(evaluation), "total_hours": round(hours, 4),
              "sample_rates": {"16000": len(train)}, "skipped": 0,
              "warnings": [f"only {hours:.2f} h of training audio (synthetic demo data)"]}
    return DatasetSplits(train, evaluation, [], report)
