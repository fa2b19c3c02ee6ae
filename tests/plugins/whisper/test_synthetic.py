"""Synthetic tone-coded speech: deterministic, well-formed, in the phone band, and separable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ftrecipe_whisper.manifest import read_audiofolder
from ftrecipe_whisper.synthetic import (
    VOCABULARY,
    SyntheticClip,
    synthetic_clip,
    synthetic_clips,
    synthetic_durations,
    word_code,
    write_synthetic_audiofolder,
)
from scipy.signal import welch


def test_deterministic_and_prefix_stable() -> None:
    a = synthetic_clips(6, seed=3)
    b = synthetic_clips(6, seed=3)
    for (wa, ta), (wb, tb) in zip(a, b):
        assert ta == tb and np.array_equal(wa, wb)
    first = synthetic_clips(2, seed=3)
    assert first[1][1] == a[1][1] and np.array_equal(first[1][0], a[1][0])
    other = synthetic_clips(6, seed=4)
    assert [t for _, t in other] != [t for _, t in a]


@pytest.mark.parametrize("options", [{}, {"max_words": 1}, {"sr": 8000, "min_words": 2, "max_words": 6}])
def test_durations_and_single_clips_are_the_rendered_clips(options) -> None:
    """The plan reads lengths without rendering, and training renders one clip at a time: both are the
    clips ``synthetic_clips`` makes, from the same random draws."""
    clips = synthetic_clips(25, seed=9, **options)
    sr = options.get("sr", 16_000)
    assert synthetic_durations(25, seed=9, **options) == [(len(wave) / sr, text) for wave, text in clips]
    for index in (0, 24):
        wave, text = synthetic_clip(index, seed=9, **options)
        assert text == clips[index][1] and np.array_equal(wave, clips[index][0])
    if "sr" not in options:
        lazy = SyntheticClip(9, 24, options.get("max_words", 4))
        assert np.array_equal(lazy.wave, clips[24][0]) and lazy.key != SyntheticClip(10, 24, lazy.max_words).key


def test_shape_of_the_data() -> None:
    clips = synthetic_clips(60, seed=0)
    counts = set()
    for wave, text in clips:
        assert wave.dtype == np.float32 and wave.ndim == 1 and np.all(np.isfinite(wave))
        assert 0.25 <= len(wave) / 16_000 <= 3.0
        assert 0.05 < np.max(np.abs(wave)) <= 0.9 + 1e-6
        words = text.split(" ")
        assert text == text.strip() and all(w in VOCABULARY for w in words)
        counts.add(len(words))
    assert counts == {1, 2, 3, 4}
    # Longer transcripts come with longer audio.
    lengths = {n: np.mean([len(w) for w, t in clips if len(t.split()) == n]) for n in counts}
    assert lengths[1] < lengths[2] < lengths[3] < lengths[4]


def test_energy_stays_in_the_phone_band() -> None:
    wave = np.concatenate([w for w, _ in synthetic_clips(10, seed=1)])
    f, p = welch(wave, 16_000, nperseg=1024)
    assert p[(f >= 250) & (f <= 3500)].sum() > 0.9 * p.sum()


def test_other_sample_rate_and_options() -> None:
    clips = synthetic_clips(5, sr=8000, seed=0, vocabulary=["alpha", "beta"], min_words=2, max_words=2)
    assert all(len(t.split()) == 2 and set(t.split()) <= {"alpha", "beta"} for _, t in clips)
    assert all(len(w) / 8000 < 3.0 for w, _ in clips)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocabulary": []}, "empty"),
        ({"vocabulary": ["a b"]}, "without spaces"),
        ({"vocabulary": ["x", "x"]}, "duplicate"),
        ({"min_words": 3, "max_words": 2}, "min_words"),
        ({"sr": 4000}, "sr must be"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthetic_clips(1, **kwargs)


def test_word_codes_are_fixed_and_distinct() -> None:
    codes = [word_code(w) for w in VOCABULARY]
    assert len(set(codes)) == len(codes)
    assert word_code("hello") == word_code("hello")


def _log_spectrum(wave: np.ndarray) -> np.ndarray:
    f, p = welch(wave, 16_000, nperseg=512)
    keep = (f > 200) & (f < 3600)
    return np.log(p[keep] + 1e-10)


def test_words_are_acoustically_separable() -> None:
    """A nearest-centroid classifier on average spectra already tells most single words apart.

    A cheap proxy for learnability (a tiny Whisper reaches low WER in about a minute of CPU).
    """
    train = synthetic_clips(160, seed=10, min_words=1, max_words=1)
    test = synthetic_clips(80, seed=11, min_words=1, max_words=1)
    feats: dict[str, list[np.ndarray]] = {}
    for wave, word in train:
        feats.setdefault(word, []).append(_log_spectrum(wave))
    centroids = {w: np.mean(v, axis=0) for w, v in feats.items()}
    names = list(centroids)
    matrix = np.stack([centroids[w] for w in names])
    hits = sum(names[int(np.argmin(((matrix - _log_spectrum(w)) ** 2).sum(1)))] == t for w, t in test)
    assert hits / len(test) > 0.6  # chance is 1/16


def test_write_audiofolder_round_trip(tmp_path: Path) -> None:
    out = write_synthetic_audiofolder(tmp_path / "synth", 8, seed=2)
    clips, report = read_audiofolder(out, min_hours=0)
    expected = synthetic_clips(8, seed=2)
    assert [c.transcript for c in clips] == [t for _, t in expected]
    assert report.clips == 8 and len(report.speaker_hours) == 4 and report.sample_rates == {16_000: 8}
    assert clips[0].duration == pytest.approx(len(expected[0][0]) / 16_000)
