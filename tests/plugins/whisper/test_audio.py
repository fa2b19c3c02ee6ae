"""load_audio, resampling, AudioError and the duration cache."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.plugins.whisper.whisper_signals import sine
from scipy.signal import resample_poly
from ftrecipe_whisper.audio import AudioError, DurationCache, load_audio, probe_audio, resample, resample_ratio, to_mono


def test_load_resamples_and_keeps_the_tone(write_wav) -> None:
    path = write_wav("tone.wav", sine(440, 1.0, 8000), 8000)
    wave = load_audio(path, 16_000)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) == 16_000
    spectrum = np.abs(np.fft.rfft(wave))
    assert np.argmax(spectrum) * 16_000 / len(wave) == pytest.approx(440, abs=2)
    assert np.max(np.abs(wave)) == pytest.approx(0.5, abs=0.02)


def test_stereo_is_mixed_down(write_wav) -> None:
    left, right = sine(300, 0.5, 16_000, 0.4), np.zeros(8000, dtype=np.float32)
    path = write_wav("stereo.wav", np.stack([left, right], axis=1), 16_000, "FLOAT")
    wave = load_audio(path, 16_000)
    np.testing.assert_allclose(wave, left / 2, atol=1e-6)


def test_resample_ratio_and_identity() -> None:
    x = sine(100, 1.0, 44_100)
    assert len(resample(x, 44_100, 16_000)) == 16_000
    y = sine(100, 1.0, 16_000)
    assert resample(y, 16_000, 16_000) is not None and np.array_equal(resample(y, 16_000, 16_000), y)
    with pytest.raises(ValueError):
        resample(y, 0, 16_000)


@pytest.mark.parametrize(("up", "down"), [(2, 1), (1, 2), (160, 441), (89, 100), (4, 8), (3, 3)])
def test_cached_filter_resamples_exactly_like_scipy(up: int, down: int) -> None:
    x = np.random.default_rng(up * 1000 + down).standard_normal(5000)
    for _ in range(2):  # designed once, then served from the cache
        np.testing.assert_array_equal(resample_ratio(x, up, down), resample_poly(x, up, down))


def test_to_mono_rejects_3d() -> None:
    with pytest.raises(ValueError):
        to_mono(np.zeros((2, 2, 2)))


def test_missing_file_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError) as info:
        load_audio(tmp_path / "nope.wav")
    assert isinstance(info.value, ValueError)
    assert info.value.path.endswith("nope.wav") and "does not exist" in info.value.reason


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not a wav file at all")
    with pytest.raises(AudioError, match="unreadable"):
        load_audio(bad)


def test_empty_file(write_wav) -> None:
    path = write_wav("empty.wav", np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioError, match="empty"):
        load_audio(path)


def test_too_long_is_refused_from_the_header(write_wav) -> None:
    path = write_wav("long.wav", np.zeros(16_000 * 3, dtype=np.float32))
    with pytest.raises(AudioError, match="too long"):
        load_audio(path, max_seconds=2.0)
    assert len(load_audio(path, max_seconds=3.0)) == 48_000


def test_nan_samples_are_refused(write_wav) -> None:
    data = np.zeros(100, dtype=np.float32)
    data[5] = np.nan
    path = write_wav("nan.wav", data, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path)


def test_probe_reads_the_header(write_wav) -> None:
    info = probe_audio(write_wav("a.wav", np.zeros(12_000, dtype=np.float32), 8000))
    assert (info.sample_rate, info.frames, info.channels) == (8000, 12_000, 1)
    assert info.duration == pytest.approx(1.5)


def test_duration_cache_memoises_and_revalidates(write_wav, tmp_path: Path, monkeypatch) -> None:
    path = write_wav("a.wav", np.zeros(8000, dtype=np.float32), 8000)
    cache_file = tmp_path / "cache" / "durations.json"
    with DurationCache(cache_file) as cache:
        assert cache.duration(path) == pytest.approx(1.0)
    assert cache_file.is_file()
    entry = next(iter(json.loads(cache_file.read_text())["entries"].values()))
    assert entry["sample_rate"] == 8000 and entry["frames"] == 8000

    # A fresh cache answers from disk without probing the file again.
    calls = []
    audio_mod = sys.modules[DurationCache.__module__]
    monkeypatch.setattr(audio_mod, "probe_audio", lambda p, **kw: calls.append(p) or probe_audio(p, **kw))
    cache2 = DurationCache(cache_file)
    assert cache2.duration(path) == pytest.approx(1.0)
    assert (cache2.hits, cache2.misses, calls) == (1, 0, [])

    # Rewriting the file (new size and mtime) invalidates the entry.
    write_wav("a.wav", np.zeros(16_000, dtype=np.float32), 8000)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache2.duration(path) == pytest.approx(2.0)
    assert cache2.misses == 1 and len(calls) == 1


def test_corrupt_cache_is_ignored(write_wav, tmp_path: Path) -> None:
    cache_file = tmp_path / "d.json"
    cache_file.write_text("{not json")
    cache = DurationCache(cache_file)
    assert len(cache) == 0
    assert cache.duration(write_wav("a.wav", np.zeros(800, dtype=np.float32), 8000)) == pytest.approx(0.1)
    cache.save()
    assert json.loads(cache_file.read_text())["version"] == DurationCache.VERSION


def test_cache_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="does not exist"):
        DurationCache(tmp_path / "c.json").info(tmp_path / "gone.wav")
