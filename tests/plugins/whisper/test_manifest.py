"""Manifest and audiofolder reading, validation, skip/fail and the data report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ftrecipe_whisper.audio import DurationCache
from ftrecipe_whisper.manifest import ManifestReport, ManifestError, load_clips, read_audiofolder, read_manifest


@pytest.fixture
def corpus(tmp_path: Path, write_wav) -> Path:
    """Four good clips (two speakers, 8k and 16k), one empty, one too long, one not audio."""
    write_wav("audio/a.wav", np.zeros(8000, dtype=np.float32), 8000)  # 1 s
    write_wav("audio/b.wav", np.zeros(16_000 * 2, dtype=np.float32), 16_000)  # 2 s
    write_wav("audio/c.wav", np.zeros(16_000 * 3, dtype=np.float32), 16_000)  # 3 s
    write_wav("audio/d.wav", np.zeros(4000, dtype=np.float32), 8000)  # 0.5 s
    write_wav("audio/empty.wav", np.zeros(0, dtype=np.float32), 16_000)
    write_wav("audio/long.wav", np.zeros(8000 * 40, dtype=np.float32), 8000)  # 40 s
    (tmp_path / "audio" / "junk.wav").write_text("not audio")
    return tmp_path


CSV = """audio,text,speaker
audio/a.wav,hello there,alice
audio/b.wav,two seconds,bob
audio/c.wav,three seconds,alice
{abs_d},half,bob
audio/empty.wav,nothing,bob
audio/long.wav,too long,alice
audio/junk.wav,junk,alice
audio/missing.wav,missing,alice
audio/a.wav,,alice
"""


def test_csv_manifest_skips_bad_clips_with_reasons(corpus: Path) -> None:
    manifest = corpus / "train.csv"
    manifest.write_text(CSV.format(abs_d=corpus / "audio" / "d.wav"))
    clips, report = read_manifest(manifest)
    assert [c.audio_path.name for c in clips] == ["a.wav", "b.wav", "c.wav", "d.wav"]
    assert clips[0].audio_path == corpus / "audio" / "a.wav"  # relative to the manifest's folder
    assert clips[0].transcript == "hello there" and clips[0].speaker == "alice"
    assert clips[1].duration == pytest.approx(2.0) and clips[1].sample_rate == 16_000

    assert report.clips == 4
    assert report.total_hours == pytest.approx(6.5 / 3600)
    assert report.speaker_hours == pytest.approx({"alice": 4.0 / 3600, "bob": 2.5 / 3600})
    assert report.sample_rates == {8000: 2, 16_000: 2}
    reasons = {Path(k).name: v for k, v in report.skipped.items()}
    assert set(reasons) == {"empty.wav", "long.wav", "junk.wav", "missing.wav", "a.wav"}
    assert "empty" in reasons["empty.wav"]
    assert "too long" in reasons["long.wav"] and "40.00 s" in reasons["long.wav"]
    assert "unreadable" in reasons["junk.wav"]
    assert "does not exist" in reasons["missing.wav"]
    assert reasons["a.wav"] == "empty transcript"
    assert report.skipped_count == 5
    assert report.warning is not None and "50" in report.warning


def test_a_compressed_clip_cut_short_after_its_header_is_skipped(tmp_path: Path) -> None:
    import soundfile as sf

    tone = (0.1 * np.sin(np.arange(16_000) / 5)).astype(np.float32)
    sf.write(tmp_path / "whole.flac", tone, 16_000)
    data = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])  # an interrupted copy: the header is intact
    assert sf.info(str(tmp_path / "cut.flac")).frames == 16_000
    (tmp_path / "m.csv").write_text("audio,text\nwhole.flac,whole\ncut.flac,cut\n")
    clips, report = read_manifest(tmp_path / "m.csv")
    assert [c.audio_path.name for c in clips] == ["whole.flac"]
    assert "truncated" in report.skipped[str(tmp_path / "cut.flac")]


def test_fail_mode_raises_on_the_first_bad_clip(corpus: Path) -> None:
    manifest = corpus / "train.csv"
    manifest.write_text(CSV.format(abs_d=corpus / "audio" / "d.wav"))
    with pytest.raises(ManifestError, match=r"empty\.wav: empty audio"):
        read_manifest(manifest, on_error="fail")
    with pytest.raises(ValueError, match="on_error"):
        read_manifest(manifest, on_error="ignore")  # type: ignore[arg-type]


def test_max_seconds_is_configurable(corpus: Path) -> None:
    manifest = corpus / "m.csv"
    manifest.write_text("audio,text\naudio/b.wav,x\naudio/c.wav,y\n")
    clips, report = read_manifest(manifest, max_seconds=2.5)
    assert [c.audio_path.name for c in clips] == ["b.wav"]
    assert "2.5 s" in next(iter(report.skipped.values()))
    assert len(read_manifest(manifest, max_seconds=None)[0]) == 2


def test_jsonl_with_custom_columns_and_duration_check(corpus: Path) -> None:
    rows = [
        {"wav": "audio/a.wav", "sentence": "one", "who": "x", "len": 1.0},
        {"wav": "audio/b.wav", "sentence": "two", "who": "y", "len": 9.0},
        {"wav": "audio/c.wav", "sentence": "three", "who": "", "len": "soon"},
        {"wav": "audio/d.wav", "sentence": "four"},
        {"wav": "audio/a.wav"},
    ]
    manifest = corpus / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    clips, report = read_manifest(
        manifest, columns={"audio": "wav", "text": "sentence", "speaker": "who", "duration": "len"}
    )
    assert [(c.transcript, c.speaker) for c in clips] == [("one", "x"), ("four", None)]
    reasons = {Path(k).name: v for k, v in report.skipped.items()}
    assert "9.00 s but the file lasts 2.00 s" in reasons["b.wav"]
    assert "not a number" in reasons["c.wav"]
    assert reasons["a.wav"] == "empty transcript"  # the row without a sentence key
    assert report.speaker_hours == pytest.approx({"x": 1 / 3600})


def test_column_errors_are_clear(corpus: Path) -> None:
    manifest = corpus / "m.csv"
    manifest.write_text("file,words\naudio/a.wav,hi\n")
    with pytest.raises(ManifestError, match="no text column"):
        read_manifest(manifest)
    with pytest.raises(ManifestError, match="'transcript' \\(for text\\) not found"):
        read_manifest(manifest, columns={"text": "transcript"})
    with pytest.raises(ManifestError, match="unknown column key"):
        read_manifest(manifest, columns={"label": "words"})
    clips, _ = read_manifest(manifest, columns={"text": "words"})
    assert clips[0].transcript == "hi"


def test_bad_manifests(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "none.csv")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ManifestError, match="unsupported"):
        read_manifest(tmp_path / "m.txt")
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "a"}\n[1, 2]\n')
    with pytest.raises(ManifestError, match=":2: expected a JSON object, got list"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "empty.csv").write_text("audio,text\n")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(tmp_path / "empty.csv")


def test_audiofolder_with_metadata_csv(corpus: Path) -> None:
    folder = corpus / "audio"
    (folder / "metadata.csv").write_text("file_name,transcription\na.wav,first\nb.wav,second\n")
    clips, report = read_audiofolder(folder)
    assert [(c.audio_path.name, c.transcript) for c in clips] == [("a.wav", "first"), ("b.wav", "second")]
    assert report.speaker_hours == {} and report.skipped == {}
    assert load_clips(folder)[0] == clips


def test_audiofolder_with_metadata_jsonl_in_subfolders(tmp_path: Path, write_wav) -> None:
    write_wav("ds/calls/x.wav", np.zeros(1600, dtype=np.float32))
    (tmp_path / "ds" / "metadata.jsonl").write_text('{"file_name": "calls/x.wav", "text": "yes"}\n')
    clips, _ = read_audiofolder(tmp_path / "ds", min_hours=0)
    assert clips[0].audio_path == tmp_path / "ds" / "calls" / "x.wav"


def test_audiofolder_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        read_audiofolder(tmp_path / "nope")
    with pytest.raises(ManifestError, match="no metadata"):
        read_audiofolder(tmp_path)
    (tmp_path / "metadata.csv").write_text("file_name,text\n")
    (tmp_path / "metadata.jsonl").write_text("")
    with pytest.raises(ManifestError, match="several metadata"):
        read_audiofolder(tmp_path)


def test_cache_is_used_and_saved(corpus: Path) -> None:
    manifest = corpus / "m.csv"
    manifest.write_text("audio,text\naudio/a.wav,x\naudio/b.wav,y\n")
    cache_path = corpus / "cache.json"
    read_manifest(manifest, cache=cache_path)
    assert len(json.loads(cache_path.read_text())["entries"]) == 2
    cache = DurationCache(cache_path)
    read_manifest(manifest, cache=cache)
    assert (cache.hits, cache.misses) == (2, 0)


def test_report_to_dict_is_json_ready() -> None:
    report = ManifestReport(
        clips=2,
        total_hours=60.0,
        speaker_hours={"a": 60.0},
        sample_rates={16_000: 1, 8000: 1},
        skipped={"x.wav": "empty audio (0 samples)"},
    )
    data = json.loads(json.dumps(report.to_dict()))
    assert data["sample_rates"] == {"8000": 1, "16000": 1}
    assert data["skipped_count"] == 1 and data["warning"] is None
    assert "2 clips, 60.00 h" in report.summary() and "1 speakers" in report.summary()


def test_no_warning_above_the_threshold(corpus: Path) -> None:
    manifest = corpus / "m.csv"
    manifest.write_text("audio,text\naudio/a.wav,x\n")
    assert read_manifest(manifest, min_hours=1 / 7200)[1].warning is None
    assert read_manifest(manifest, min_hours=1.0)[1].warning is not None
