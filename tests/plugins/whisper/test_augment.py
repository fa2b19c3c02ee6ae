"""Augmentations do what they claim (SNR, band limit, length, pitch, gain) and are reproducible."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.plugins.whisper.whisper_signals import sine
from ftrecipe_whisper.augment import (
    AUGMENTATIONS,
    AugmentChain,
    add_noise,
    apply_gain,
    augmentation_specs,
    pitch_shift,
    sample_seed,
    save_augmented,
    speed_perturb,
    step_rng,
    telephone_channel,
    validate_params,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import welch

SR = 16_000


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _speechy(seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    """Harmonic tone with an envelope: energy across the phone band and beyond."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 40))
    return (0.3 * x * np.hanning(len(t))).astype(np.float32)


def _snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))


def _band_fraction(x: np.ndarray, lo: float, hi: float = np.inf, sr: int = SR) -> float:
    f, p = welch(x, sr, nperseg=1024)
    return float(p[(f > lo) & (f <= hi)].sum() / p.sum())


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "hum"])
@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_noise_hits_the_requested_snr(kind: str, snr: float) -> None:
    clean = _speechy()
    noisy = add_noise(clean, SR, _rng(), snr_db=snr, kind=kind)
    assert noisy.dtype == np.float32 and noisy.shape == clean.shape
    assert _snr(clean, noisy) == pytest.approx(snr, abs=0.05)


@settings(max_examples=25, deadline=None)
@given(lo=st.floats(-5, 40), width=st.floats(0, 10), seed=st.integers(0, 2**32 - 1))
def test_noise_snr_stays_inside_the_range(lo: float, width: float, seed: int) -> None:
    clean = _speechy(0.25)
    snr = _snr(clean, add_noise(clean, SR, _rng(seed), snr_db=(lo, lo + width)))
    assert lo - 0.05 <= snr <= lo + width + 0.05


def test_pink_and_brown_noise_are_tilted_towards_low_frequencies() -> None:
    n = SR * 2
    silent_ref = np.ones(n, dtype=np.float32) * 0.1
    lows = {}
    for kind in ("white", "pink", "brown"):
        noise = add_noise(silent_ref, SR, _rng(), snr_db=0.0, kind=kind) - silent_ref
        lows[kind] = _band_fraction(noise, 0, 500)
    assert lows["white"] < lows["pink"] < lows["brown"]


def test_hum_sits_on_the_mains_frequency() -> None:
    clean = _speechy()
    noise = add_noise(clean, SR, _rng(), snr_db=0.0, kind="hum", mains_hz=60.0) - clean
    spec = np.abs(np.fft.rfft(noise))
    assert np.argmax(spec) * SR / len(noise) == pytest.approx(60, abs=1.5)


def test_noise_from_a_folder(tmp_path: Path) -> None:
    noise_dir = tmp_path / "noise" / "office"
    noise_dir.mkdir(parents=True)
    sf.write(str(noise_dir / "fan.wav"), sine(1000, 0.2, 8000, 0.3), 8000)  # short: gets tiled
    clean = _speechy()
    noisy = add_noise(clean, SR, _rng(), snr_db=5.0, noise_dir=tmp_path / "noise")
    assert _snr(clean, noisy) == pytest.approx(5.0, abs=0.05)
    spec = np.abs(np.fft.rfft(noisy - clean))
    assert np.argmax(spec) * SR / len(clean) == pytest.approx(1000, abs=3)


def test_silent_clip_is_left_alone() -> None:
    z = np.zeros(1000, dtype=np.float32)
    np.testing.assert_array_equal(add_noise(z, SR, _rng(), snr_db=10.0), z)


@pytest.mark.parametrize("codec", ["none", "mulaw", "alaw"])
def test_telephone_removes_energy_above_the_band(codec: str) -> None:
    x = (0.1 * _rng(1).standard_normal(SR * 2)).astype(np.float32)
    assert _band_fraction(x, 3400) > 0.5  # white noise: most energy is above 3.4 kHz
    y = telephone_channel(x, SR, _rng(), codec=codec)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _band_fraction(y, 3400) < 0.03  # only the filter's transition band remains
    assert _band_fraction(y, 3700) < 1e-3
    assert _band_fraction(y, 4000) < 1e-6  # the 8 kHz line cannot carry anything above 4 kHz
    assert _band_fraction(y, 0, 200) < 1e-3
    assert _band_fraction(y, 500, 3000) > 0.75  # 2500 of the 3100 Hz pass band


def test_mulaw_quantisation_is_audible_but_small() -> None:
    x = _speechy()
    clean_line = telephone_channel(x, SR, _rng(), codec="none")
    mulaw_line = telephone_channel(x, SR, _rng(), codec="mulaw")
    snr = _snr(clean_line, mulaw_line)
    assert 20 < snr < 50  # G.711 is roughly 35-38 dB SQNR on a loud signal


def test_telephone_works_at_8k_input() -> None:
    x = (0.1 * _rng(1).standard_normal(8000)).astype(np.float32)
    y = telephone_channel(x, 8000, _rng())
    assert _band_fraction(y, 3600, sr=8000) < 1e-3


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.1, 1.25])
def test_speed_changes_length_by_the_factor(factor: float) -> None:
    x = sine(200, 1.0, SR)
    y = speed_perturb(x, SR, _rng(), factor=factor)
    assert len(y) == pytest.approx(len(x) / factor, abs=1)
    peak = np.argmax(np.abs(np.fft.rfft(y))) * SR / len(y)
    assert peak == pytest.approx(200 * factor, rel=0.01)  # Kaldi-style: pitch follows speed


def test_speed_range_is_sampled() -> None:
    x = sine(200, 1.0, SR)
    lengths = {len(speed_perturb(x, SR, _rng(s), factor=(0.9, 1.1))) for s in range(10)}
    assert len(lengths) > 5 and all(SR / 1.1 - 1 <= n <= SR / 0.9 + 1 for n in lengths)


@pytest.mark.parametrize("semitones", [-3.0, 2.0, 5.0])
def test_pitch_shift_keeps_duration_and_moves_pitch(semitones: float) -> None:
    x = sine(220, 1.0, SR, 0.3)
    y = pitch_shift(x, SR, _rng(), semitones=semitones)
    assert len(y) == len(x)
    f, p = welch(y[2000:-2000], SR, nperseg=8192)
    assert f[np.argmax(p)] == pytest.approx(220 * 2 ** (semitones / 12), rel=0.02)


def _frame_by_frame_time_stretch(x: np.ndarray, rate: float, n_fft: int) -> np.ndarray:
    """The textbook phase vocoder, one frame at a time: the reference for the vectorised one."""
    hop = n_fft // 4
    win = np.hanning(n_fft + 1)[:-1]
    pad = n_fft // 2
    xp = np.pad(x, (pad, pad + n_fft))
    n_frames = 2 + (len(x) + 2 * pad - n_fft) // hop
    spec = np.array([np.fft.rfft(xp[t * hop : t * hop + n_fft] * win) for t in range(n_frames)])
    spec = np.vstack([spec, np.zeros((1, spec.shape[1]))])
    expected = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft
    phase = np.angle(spec[0])
    frames = []
    for step in np.arange(0, spec.shape[0] - 1, rate):
        i, a = int(step), step - int(step)
        frames.append(((1 - a) * np.abs(spec[i]) + a * np.abs(spec[i + 1])) * np.exp(1j * phase))
        dphi = np.angle(spec[i + 1]) - np.angle(spec[i]) - expected
        phase = phase + expected + dphi - 2 * np.pi * np.round(dphi / (2 * np.pi))
    out, norm = np.zeros(n_fft + hop * (len(frames) - 1)), np.zeros(n_fft + hop * (len(frames) - 1))
    for t, frame in enumerate(frames):
        out[t * hop : t * hop + n_fft] += np.fft.irfft(frame, n_fft) * win
        norm[t * hop : t * hop + n_fft] += win**2
    out = (out / np.where(norm > 1e-8, norm, 1.0))[pad : pad + round(len(x) / rate)]
    return np.pad(out, (0, round(len(x) / rate) - len(out)))


@pytest.mark.parametrize("rate", [0.84, 1.0, 1.19])
@pytest.mark.parametrize("length", [300, 9_172])
def test_vectorised_phase_vocoder_matches_the_frame_loop(rate: float, length: int) -> None:
    from ftrecipe_whisper.augment import _time_stretch

    x = _speechy(length / SR)[:length]
    np.testing.assert_allclose(_time_stretch(x, rate, 512), _frame_by_frame_time_stretch(x, rate, 512), atol=1e-9)


def test_gain_applies_decibels() -> None:
    x = sine(300, 0.1, SR, 0.1)
    y = apply_gain(x, SR, _rng(), gain_db=6.0)
    assert np.max(np.abs(y)) / np.max(np.abs(x)) == pytest.approx(10 ** (6 / 20), rel=1e-4)


@settings(max_examples=30, deadline=None)
@given(amp=st.floats(0.01, 1.5), db=st.floats(-20, 30))
def test_gain_never_clips(amp: float, db: float) -> None:
    x = sine(300, 0.05, SR, amp)
    y = apply_gain(x, SR, _rng(), gain_db=db)
    assert np.max(np.abs(y)) <= 0.99 + 1e-6


def test_every_registered_augmentation_runs_with_defaults() -> None:
    x = _speechy(0.5)
    for name, (fn, params) in AUGMENTATIONS.items():
        full = validate_params(name, {})
        y = fn(x, SR, _rng(), **full)
        assert y.dtype == np.float32 and y.ndim == 1 and np.all(np.isfinite(y)), name
        assert set(params) == set(full)
    specs = augmentation_specs()
    assert specs["speed"]["params"]["factor"]["default"] == [0.9, 1.1]
    assert specs["telephone"]["help"]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("reverb", {}, "unknown augmentation"),
        ("speed", {"rate": 1.1}, "unknown parameter"),
        ("speed", {"factor": [1.2, 0.8]}, "lo 1.2 > hi 0.8"),
        ("speed", {"factor": [0.1, 1.0]}, "outside"),
        ("speed", {"factor": [0.9, 1.0, 1.1]}, "needs \\[lo, hi\\]"),
        ("noise", {"kind": "purple"}, "not in"),
        ("noise", {"kind": "file"}, "needs noise_dir"),
        ("noise", {"noise_dir": "/definitely/not/here"}, "not a folder"),
        ("gain", {"gain_db": "loud"}, "expected a number"),
        ("telephone", {"low_hz": 2000, "high_hz": 1500}, "low_hz must be below"),
    ],
)
def test_validation_errors(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_params(name, params)


def test_chain_probability_must_be_valid() -> None:
    with pytest.raises(ValueError, match="probability"):
        AugmentChain([("gain", {}, 1.5)])


CHAIN_STEPS = [
    ("noise", {"snr_db": [5, 20], "kind": ["white", "pink"]}, 0.5),
    ("speed", {"factor": [0.9, 1.1]}, 0.5),
    ("gain", {"gain_db": [-6, 6]}, 0.8),
    ("telephone", {"codec": ["mulaw", "alaw"]}, 0.5),
]


def test_chain_is_deterministic_per_key_and_varies_across_keys() -> None:
    chain = AugmentChain(CHAIN_STEPS)
    x = _speechy()
    a = chain(x, SR, seed=sample_seed(7, 2, 11))
    b = chain(x, SR, seed=sample_seed(7, 2, 11))
    np.testing.assert_array_equal(a, b)
    others = [chain(x, SR, seed=sample_seed(*key)) for key in [(8, 2, 11), (7, 3, 11), (7, 2, 12)]]
    for other in others:
        assert other.shape != a.shape or not np.allclose(other, a)


def test_chain_follows_the_documented_rng_derivation() -> None:
    """Step k of key (seed, epoch, index) draws from default_rng([seed, epoch, index, k])."""
    chain = AugmentChain(CHAIN_STEPS)
    x = _speechy()
    key = sample_seed(3, 1, 42)
    expected = x
    for k, (name, _params, p) in enumerate(CHAIN_STEPS):
        rng = np.random.default_rng([*key, k])
        if rng.random() < p:
            expected = AUGMENTATIONS[name].fn(expected, SR, rng, **chain.steps[k].params)
    np.testing.assert_array_equal(chain(x, SR, seed=key), expected)
    assert step_rng(key, 2).random() == np.random.default_rng([3, 1, 42, 2]).random()


def test_chain_fires_steps_at_their_probability() -> None:
    chain = AugmentChain([("gain", {"gain_db": -6.0}, 0.3), ("gain", {"gain_db": -6.0}, 1.0)])
    x = sine(300, 0.05, SR, 0.5)
    counts = {"first": 0, "second": 0}
    for i in range(400):
        _, applied = chain.apply(x, SR, sample_seed(0, 0, i))
        counts["first"] += len(applied) == 2
        counts["second"] += "gain" in applied
    assert 0.22 < counts["first"] / 400 < 0.38
    assert counts["second"] == 400


def test_sample_seed_rejects_negative() -> None:
    with pytest.raises(ValueError):
        sample_seed(-1, 0, 0)


def test_from_config_and_describe() -> None:
    chain = AugmentChain.from_config(
        [
            {"name": "noise", "p": 0.5, "params": {"snr_db": [5, 20], "kind": ["white", "hum"]}},
            {"name": "telephone"},
        ]
    )
    line = chain.describe()
    assert "\n" not in line
    assert line.startswith("noise(snr_db=5..20, kind=white|hum")
    assert line.endswith("telephone(low_hz=300, high_hz=3400, codec=mulaw, channel_rate=8000) p=1")
    assert AugmentChain().describe() == "no augmentation"
    with pytest.raises(ValueError, match="needs 'name'"):
        AugmentChain.from_config([{"name": "gain", "prob": 0.5}])


def test_save_augmented_writes_a_listenable_audiofolder(tmp_path: Path, write_wav) -> None:
    from ftrecipe_whisper.manifest import read_audiofolder

    src = write_wav("src/a.wav", _speechy(0.5, 8000), 8000)
    clips = [src, (_speechy(0.4), "two words")]
    chain = AugmentChain([("telephone", {}, 1.0), ("speed", {"factor": 1.25}, 1.0)])
    out = tmp_path / "listen"
    paths = save_augmented(clips, chain, 5, out, SR, seed=3)
    assert [p.name for p in paths] == [f"aug_{i:04d}.wav" for i in range(5)]
    assert sf.info(str(paths[1])).samplerate == SR
    assert sf.info(str(paths[1])).frames == pytest.approx(0.4 * SR / 1.25, abs=1)
    rows = list(csv.DictReader(open(out / "metadata.csv")))
    assert rows[1]["text"] == "two words" and rows[0]["applied"] == "telephone+speed"
    assert (out / "chain.txt").read_text().startswith("telephone(")
    # Same key as training: item i of the saved set equals chain(clip, seed=(seed, 0, i)).
    expected = chain(clips[1][0], SR, seed=sample_seed(3, 0, 1))
    saved, _ = sf.read(str(paths[1]), dtype="float32")
    np.testing.assert_allclose(saved, np.clip(expected, -1, 1), atol=1 / 32768 + 1e-6)
    got, report = read_audiofolder(out, min_hours=0.0, allow_empty_text=True)
    assert len(got) == 5 and report.warning is None
