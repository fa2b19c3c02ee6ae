"""Read and validate speech datasets: CSV/JSONL manifests or HF-style audio folders.

Bad clips are the commonest reason a long fine-tune dies at hour three, so every clip is checked
up front (exists, readable header, non-empty, not longer than the model window) and the outcome is
summarised in a :class:`ManifestReport` that the run log and a JSON file can carry. Durations come from
file headers only, optionally memoised in a :class:`~ftrecipe_whisper.audio.DurationCache`.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ftrecipe.plugin import RowFileError, iter_rows

from .audio import WHISPER_WINDOW_SECONDS, AudioError, AudioInfo, DurationCache, probe_audio

__all__ = [
    "DEFAULT_COLUMNS",
    "MIN_HOURS_GUIDANCE",
    "Clip",
    "GroupColumnError",
    "ManifestReport",
    "ManifestError",
    "load_clips",
    "read_audiofolder",
    "read_manifest",
]

OnError = Literal["skip", "fail"]

#: Below this many hours a robust Whisper fine-tune is unlikely (guidance, not a hard limit).
MIN_HOURS_GUIDANCE = 50.0

#: Logical column -> candidate names tried in order when the caller gives no mapping.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "audio": ("audio", "path", "audio_path", "file", "file_name", "filename"),
    "text": ("text", "transcript", "transcription", "sentence"),
    "speaker": ("speaker", "speaker_id", "client_id"),
    "duration": ("duration", "duration_s", "seconds"),
}
_REQUIRED = ("audio", "text")


class ManifestError(ValueError):
    """The manifest itself is unusable, or a clip failed while ``on_error="fail"``."""


class GroupColumnError(ManifestError):
    """A ``group_by`` column the manifest does not have (the recipe's ``data.group_by`` is at fault)."""


@dataclass(frozen=True)
class Clip:
    """One validated training example."""

    audio_path: Path
    transcript: str
    speaker: str | None
    duration: float
    sample_rate: int
    groups: Mapping[str, str] = field(default_factory=dict)
    """``group_by`` column -> this clip's value ("" where the row leaves it empty)."""


@dataclass
class ManifestReport:
    """What was found: totals, per-speaker hours, sample rates, skipped files and a size warning."""

    clips: int
    total_hours: float
    speaker_hours: dict[str, float]
    sample_rates: dict[int, int]
    skipped: dict[str, str] = field(default_factory=dict)
    warning: str | None = None

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (sample-rate keys become strings, as JSON requires)."""
        return {
            "clips": self.clips,
            "total_hours": self.total_hours,
            "speaker_hours": dict(self.speaker_hours),
            "sample_rates": {str(k): v for k, v in sorted(self.sample_rates.items())},
            "skipped_count": self.skipped_count,
            "skipped": dict(self.skipped),
            "warning": self.warning,
        }

    def summary(self) -> str:
        """One line for the run log."""
        rates = ", ".join(f"{sr} Hz x{n}" for sr, n in sorted(self.sample_rates.items())) or "none"
        line = f"{self.clips} clips, {self.total_hours:.2f} h, sample rates: {rates}, skipped {self.skipped_count}"
        if self.speaker_hours:
            line += f", {len(self.speaker_hours)} speakers"
        return line + (f" (warning: {self.warning})" if self.warning else "")


def audio_totals(clips: Iterable[Any]) -> tuple[float, dict[str, float], dict[int, int]]:
    """Hours of audio, hours per speaker and clips per sample rate (both sorted) of clip-like objects
    (``duration``, ``speaker``, ``sample_rate``): one computation for the manifest and the data report."""
    hours = 0.0
    per_speaker: dict[str, float] = defaultdict(float)
    rates: Counter[int] = Counter()
    for clip in clips:
        hours += clip.duration / 3600.0
        rates[clip.sample_rate] += 1
        if clip.speaker is not None:
            per_speaker[clip.speaker] += clip.duration / 3600.0
    return hours, dict(sorted(per_speaker.items())), dict(sorted(rates.items()))


# --------------------------------------------------------------------------- row readers


def _read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) from a .csv/.tsv or .jsonl/.json manifest."""
    try:
        yield from iter_rows(path)
    except RowFileError as error:
        raise ManifestError(str(error)) from error


def _resolve_columns(available: set[str], columns: Mapping[str, str] | None, where: str) -> dict[str, str | None]:
    """Map logical columns to the file's names; explicit names must exist, defaults are guessed."""
    columns = dict(columns or {})
    unknown = set(columns) - set(DEFAULT_COLUMNS)
    if unknown:
        raise ManifestError(f"unknown column key(s) {sorted(unknown)}; expected some of {sorted(DEFAULT_COLUMNS)}")
    out: dict[str, str | None] = {}
    for key, candidates in DEFAULT_COLUMNS.items():
        if key in columns:
            if columns[key] not in available:
                raise ManifestError(f"{where}: column {columns[key]!r} (for {key}) not found; has {sorted(available)}")
            out[key] = columns[key]
        else:
            out[key] = next((c for c in candidates if c in available), None)
            if out[key] is None and key in _REQUIRED:
                raise ManifestError(
                    f"{where}: no {key} column; looked for {list(candidates)}, has {sorted(available)}"
                    f" (map it with columns={{'{key}': '<name>'}})"
                )
    return out


def _group_columns(available: set[str], mapping: Mapping[str, str | None], group_by: Sequence[str], where: str) -> dict[str, str]:
    """``group_by`` name -> the file's column: the column of that name, else the canonical column it maps
    to (``speaker`` found as ``client_id``)."""
    out = {}
    for name in group_by:
        column = name if name in available else mapping.get(name)
        if column is None:
            raise GroupColumnError(f"{where}: no column {name!r} to group by; has {sorted(available)}")
        out[name] = column
    return out


# --------------------------------------------------------------------------- validation


@dataclass
class _Collector:
    max_seconds: float | None
    on_error: OnError
    min_hours: float
    cache: DurationCache | None
    duration_tolerance: float
    allow_empty_text: bool
    clips: list[Clip] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def reject(self, key: str, reason: str) -> None:
        if self.on_error == "fail":
            raise ManifestError(f"{key}: {reason}")
        self.skipped[key] = reason

    def add(self, audio: Path, text: Any, speaker: Any, duration: Any, key: str,
            groups: Mapping[str, str] | None = None) -> None:
        if text is None or (isinstance(text, str) and not text.strip() and not self.allow_empty_text):
            self.reject(key, "empty transcript")
            return
        try:
            info: AudioInfo = self.cache.info(audio) if self.cache is not None else probe_audio(audio, to_end=True)
        except AudioError as exc:
            self.reject(key, exc.reason)
            return
        if info.frames == 0:
            self.reject(key, "empty audio (0 samples)")
            return
        if self.max_seconds is not None and info.duration > self.max_seconds:
            self.reject(key, f"too long: {info.duration:.2f} s > {self.max_seconds:g} s model window")
            return
        if duration not in (None, ""):
            try:
                stated = float(duration)
            except (TypeError, ValueError):
                self.reject(key, f"duration {duration!r} is not a number")
                return
            if abs(stated - info.duration) > self.duration_tolerance:
                self.reject(key, f"manifest says {stated:.2f} s but the file lasts {info.duration:.2f} s")
                return
        spk = None if speaker in (None, "") else str(speaker)
        self.clips.append(Clip(audio, str(text).strip(), spk, info.duration, info.sample_rate, dict(groups or {})))

    def finish(self) -> tuple[list[Clip], ManifestReport]:
        if self.cache is not None:
            self.cache.save()
        total_h, per_spk, rates = audio_totals(self.clips)
        warning = None
        if total_h < self.min_hours:
            warning = (
                f"only {total_h:.2f} h of audio; about {self.min_hours:g} h or more is advised for a robust "
                "Whisper fine-tune (fine for smoke tests and small adaptations)"
            )
        report = ManifestReport(
            clips=len(self.clips),
            total_hours=total_h,
            speaker_hours=per_spk,
            sample_rates=rates,
            skipped=self.skipped,
            warning=warning,
        )
        return self.clips, report


def _collector(
    max_seconds: float | None,
    on_error: str,
    min_hours: float,
    cache: DurationCache | str | os.PathLike[str] | None,
    duration_tolerance: float,
    allow_empty_text: bool,
) -> _Collector:
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if cache is not None and not isinstance(cache, DurationCache):
        cache = DurationCache(cache)
    return _Collector(max_seconds, on_error, min_hours, cache, duration_tolerance, allow_empty_text)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- public readers


def read_manifest(
    path: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    max_seconds: float | None = WHISPER_WINDOW_SECONDS,
    on_error: OnError = "skip",
    cache: DurationCache | str | os.PathLike[str] | None = None,
    min_hours: float = MIN_HOURS_GUIDANCE,
    duration_tolerance: float = 0.5,
    allow_empty_text: bool = False,
    base_dir: str | os.PathLike[str] | None = None,
    group_by: Sequence[str] = (),
) -> tuple[list[Clip], ManifestReport]:
    """Read a CSV/TSV/JSONL manifest and validate every clip.

    ``columns`` maps logical names (audio, text, speaker, duration) to the file's column names;
    without it common names are guessed (audio/path/file_name, text/transcript/sentence, ...).
    Relative audio paths are resolved against ``base_dir`` (default: the manifest's folder).
    A stated duration that differs from the file's by more than ``duration_tolerance`` seconds
    marks a mismatched row. ``on_error="skip"`` records per-file reasons in the report;
    ``"fail"`` raises :class:`ManifestError` at the first bad clip. Each clip carries its values of the
    ``group_by`` columns (:class:`GroupColumnError` where the file lacks one).
    """
    mpath = Path(path)
    if not mpath.is_file():
        raise ManifestError(f"manifest {mpath} does not exist")
    base = Path(base_dir) if base_dir is not None else mpath.parent
    col = _collector(max_seconds, on_error, min_hours, cache, duration_tolerance, allow_empty_text)
    rows = list(_read_rows(mpath))
    if not rows:
        raise ManifestError(f"{mpath}: manifest has no rows")
    # JSONL rows may differ in keys: a column exists if any row has it.
    available = set().union(*(row.keys() for _, row in rows))
    mapping = _resolve_columns(available, columns, str(mpath))
    grouping = _group_columns(available, mapping, group_by, str(mpath))
    for line, row in rows:
        raw_audio = row.get(mapping["audio"])  # type: ignore[arg-type]
        if raw_audio in (None, ""):
            col.reject(f"{mpath.name}:{line}", "no audio path")
            continue
        audio = Path(str(raw_audio)).expanduser()
        if not audio.is_absolute():
            audio = base / audio
        col.add(
            audio,
            row.get(mapping["text"]),  # type: ignore[arg-type]
            row.get(mapping["speaker"]) if mapping["speaker"] else None,
            row.get(mapping["duration"]) if mapping["duration"] else None,
            key=str(audio),
            groups={name: "" if row.get(column) is None else str(row.get(column)).strip() for name, column in grouping.items()},
        )
    return col.finish()


def read_audiofolder(
    folder: str | os.PathLike[str],
    *,
    columns: Mapping[str, str] | None = None,
    max_seconds: float | None = WHISPER_WINDOW_SECONDS,
    on_error: OnError = "skip",
    cache: DurationCache | str | os.PathLike[str] | None = None,
    min_hours: float = MIN_HOURS_GUIDANCE,
    duration_tolerance: float = 0.5,
    allow_empty_text: bool = False,
    group_by: Sequence[str] = (),
) -> tuple[list[Clip], ManifestReport]:
    """Read an HF-audiofolder-style directory: audio files plus ``metadata.csv`` or ``metadata.jsonl``.

    The metadata's ``file_name`` column holds paths relative to the folder; the transcript column
    is ``text``/``transcription``/... (or set via ``columns``). Audio files present in the folder but
    missing from the metadata are not training examples and are ignored.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ManifestError(f"audio folder {root} does not exist")
    found = [root / name for name in ("metadata.csv", "metadata.jsonl", "metadata.tsv") if (root / name).is_file()]
    if not found:
        raise ManifestError(f"{root}: no metadata.csv or metadata.jsonl (needs file_name + transcript columns)")
    if len(found) > 1:
        raise ManifestError(f"{root}: several metadata files {[p.name for p in found]}; keep one")
    cols = {"audio": "file_name", **dict(columns or {})}
    return read_manifest(
        found[0],
        columns=cols,
        max_seconds=max_seconds,
        on_error=on_error,
        cache=cache,
        min_hours=min_hours,
        duration_tolerance=duration_tolerance,
        allow_empty_text=allow_empty_text,
        base_dir=root,
        group_by=group_by,
    )


def load_clips(source: str | os.PathLike[str], **kwargs: Any) -> tuple[list[Clip], ManifestReport]:
    """Dispatch: a folder is read with :func:`read_audiofolder`, a file with :func:`read_manifest`."""
    return read_audiofolder(source, **kwargs) if Path(source).is_dir() else read_manifest(source, **kwargs)
