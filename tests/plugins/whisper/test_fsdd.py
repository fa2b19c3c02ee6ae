"""FSDD manifest writer, plus end-to-end checks on the real recordings (skipped when absent)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from ftrecipe_whisper.audio import load_audio
from ftrecipe_whisper.augment import sample_seed
from ftrecipe_whisper.chain import AugmentedChain
from ftrecipe_whisper.fsdd import DIGIT_WORDS, fsdd_manifest, fsdd_speakers, parse_fsdd_name
from ftrecipe_whisper.manifest import read_manifest
from scipy.signal import welch


def test_parse_name() -> None:
    assert parse_fsdd_name("7_jackson_32.wav") == (7, "jackson", 32)
    with pytest.raises(ValueError):
        parse_fsdd_name("jackson_7.wav")


@pytest.fixture
def fake_fsdd(tmp_path: Path, write_wav) -> Path:
    """A miniature FSDD: 3 digits x 2 speakers x 2 takes, with a metadata.py."""
    for digit in (0, 5, 9):
        for speaker in ("ann", "bob"):
            for index in (0, 1):
                write_wav(f"fsdd/recordings/{digit}_{speaker}_{index}.wav", np.zeros(4000, dtype=np.float32), 8000)
    (tmp_path / "fsdd" / "recordings" / "README.txt").write_text("not audio")
    (tmp_path / "fsdd" / "metadata.py").write_text(
        '"""Speakers."""\nmetadata = {\n  "ann": {"gender": "female", "accent": "IRL/Irish"},\n'
        '  "bob": {"gender": "male", "accent": "USA/neutral"},\n}\nimport os  # never executed\n'
    )
    return tmp_path / "fsdd"


def test_manifest_from_a_miniature_fsdd(fake_fsdd: Path, tmp_path: Path) -> None:
    out = fsdd_manifest(fake_fsdd, tmp_path / "manifests" / "all.csv")
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 12
    assert rows[0] == {"audio": "../fsdd/recordings/0_ann_0.wav", "text": "zero", "speaker": "ann", "accent": "IRL/Irish"}
    assert {r["text"] for r in rows} == {"zero", "five", "nine"}
    clips, report = read_manifest(out)
    assert len(clips) == 12 and report.skipped == {}
    assert report.speaker_hours == pytest.approx({"ann": 3 / 3600, "bob": 3 / 3600})


def test_speakers_and_limit(fake_fsdd: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(open(fsdd_manifest(fake_fsdd, tmp_path / "bob.csv", speakers=["bob"]))))
    assert {r["speaker"] for r in rows} == {"bob"} and len(rows) == 6
    # limit takes take 0 of every digit and speaker before any take 1
    rows = list(csv.DictReader(open(fsdd_manifest(fake_fsdd / "recordings", tmp_path / "few.csv", limit=6))))
    assert {(r["text"], r["speaker"]) for r in rows} == {(d, s) for d in ("zero", "five", "nine") for s in ("ann", "bob")}
    with pytest.raises(ValueError, match="carol"):
        fsdd_manifest(fake_fsdd, tmp_path / "x.csv", speakers=["carol"])
    with pytest.raises(FileNotFoundError):
        fsdd_manifest(tmp_path / "nowhere", tmp_path / "y.csv")


# ----------------------------------------------------------------------------- real data


def test_real_fsdd_metadata(fsdd_root: Path) -> None:
    meta = fsdd_speakers(fsdd_root)
    assert meta["nicolas"]["accent"] == "BEL/French"


def test_real_fsdd_load_and_resample(fsdd_root: Path) -> None:
    path = fsdd_root / "recordings" / "7_jackson_0.wav"
    at8k = load_audio(path, 8000)
    at16k = load_audio(path, 16_000)
    assert at16k.dtype == np.float32 and len(at16k) == 2 * len(at8k)
    assert 0.01 < np.max(np.abs(at16k)) <= 1.0
    # Upsampling adds no content above the original 4 kHz Nyquist frequency.
    f, p = welch(at16k, 16_000, nperseg=512)
    assert p[f > 4200].sum() < 1e-3 * p.sum()


def test_real_fsdd_report_with_per_speaker_hours(fsdd_root: Path, tmp_path: Path) -> None:
    out = fsdd_manifest(fsdd_root, tmp_path / "fsdd.csv", limit=100)
    clips, report = read_manifest(out, cache=tmp_path / "durations.json")
    assert report.clips == 100 and report.skipped == {}
    assert report.sample_rates == {8000: 100}
    assert set(report.speaker_hours) == {"george", "jackson", "lucas", "nicolas", "theo"}
    assert sum(report.speaker_hours.values()) == pytest.approx(report.total_hours)
    assert 0.005 < report.total_hours < 0.1
    assert report.warning is not None  # far below 50 h
    assert {c.transcript for c in clips} == set(DIGIT_WORDS)


def test_real_fsdd_augmentation(fsdd_root: Path) -> None:
    """The chain `ftrecipe run` builds from a recipe, on a real 8 kHz recording played at 16 kHz."""
    from ftrecipe.registry import get_registry
    from ftrecipe.validation import validate_text

    result = validate_text(
        "model: {modality: whisper, base: openai/whisper-tiny, init: scratch}\n"
        "data:\n  format: synthetic\n  augment:\n    - {name: speed, factor: 1.1}\n"
        "    - {name: noise, snr_db: 10, kind: pink}\n    - {name: telephone}\n",
        source="fsdd.yaml",
    )
    assert result.ok, [d.text() for d in result.diagnostics]
    chain = AugmentedChain.from_recipe(result.recipe, get_registry())
    wave = load_audio(fsdd_root / "recordings" / "3_theo_5.wav", 16_000)
    a, fired = chain.apply(wave, 16_000, sample_seed(0, 0, 5))
    np.testing.assert_array_equal(a, chain(wave, 16_000, sample_seed(0, 0, 5)))
    assert fired == ["speed", "noise", "telephone"] and a.dtype == np.float32
    assert len(a) == pytest.approx(len(wave) / 1.1, abs=1)
    assert np.all(np.isfinite(a)) and not np.allclose(a[: len(a) // 2], wave[: len(a) // 2])
