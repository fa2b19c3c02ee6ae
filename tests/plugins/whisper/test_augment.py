"""Whisper's augmentations: each function does what it claims (SNR, band limit, length, pitch, gain),
the chain `ftrecipe run` applies is seeded exactly as documented, and the recipe sections (the one
parameter spec) reject bad parameters where they are written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_text
from ftrecipe_whisper.augment import (
    add_noise,
    apply_gain,
    pitch_shift,
    sample_seed,
    speed_perturb,
    step_rng,
    telephone_channel,
)
from ftrecipe_whisper.chain import AugmentedChain, ChainStep
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import welch

from tests.plugins.whisper.whisper_signals import sine

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


# ----------------------------------------------------------------------------- noise


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


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_hum_sits_on_the_mains_frequency(mains: float) -> None:
    clean = _speechy()
    noise = add_noise(clean, SR, _rng(), snr_db=0.0, kind="hum", mains_hz=mains) - clean
    spec = np.abs(np.fft.rfft(noise))
    assert np.argmax(spec) * SR / len(noise) == pytest.approx(mains, abs=1.5)


def test_noise_from_a_folder(tmp_path: Path) -> None:
    noise_dir = tmp_path / "noise" / "office"
    noise_dir.mkdir(parents=True)
    sf.write(str(noise_dir / "fan.wav"), sine(1000, 0.2, 8000, 0.3), 8000)  # short: gets tiled
    clean = _speechy()
    noisy = add_noise(clean, SR, _rng(), snr_db=5.0, noise_dir=tmp_path / "noise")
    assert _snr(clean, noisy) == pytest.approx(5.0, abs=0.05)
    spec = np.abs(np.fft.rfft(noisy - clean))
    assert np.argmax(spec) * SR / len(clean) == pytest.approx(1000, abs=3)


@pytest.mark.parametrize("length", [0, 1000])
def test_silent_or_empty_clips_are_handled(length: int) -> None:
    """No NaN from a silent clip (its SNR is undefined), no crash on an empty one."""
    z = np.zeros(length, dtype=np.float32)
    np.testing.assert_array_equal(add_noise(z, SR, _rng(), snr_db=10.0), z)
    for out in (
        telephone_channel(z, SR, _rng(), codec="none"),
        apply_gain(z, SR, _rng(), gain_db=20.0),
        speed_perturb(z, SR, _rng(), factor=1.0),
        pitch_shift(z, SR, _rng(), semitones=3.0),
    ):
        assert out.dtype == np.float32 and out.shape == z.shape and np.all(out == 0)
    # The 8-bit companders have no zero code word: silence comes back as a faint filtered click.
    for codec in ("mulaw", "alaw"):
        line = telephone_channel(z, SR, _rng(), codec=codec)
        assert line.shape == z.shape and np.all(np.abs(line) < 1e-3)
    assert len(speed_perturb(z, SR, _rng(), factor=1.25)) == round(length / 1.25)


# ----------------------------------------------------------------------------- telephone


@pytest.mark.parametrize("codec", ["none", "mulaw", "alaw"])
def test_telephone_removes_energy_outside_the_band(codec: str) -> None:
    x = (0.1 * _rng(1).standard_normal(SR * 2)).astype(np.float32)
    assert _band_fraction(x, 3400) > 0.5  # white noise: most energy is above 3.4 kHz
    y = telephone_channel(x, SR, _rng(), codec=codec)
    assert y.shape == x.shape and y.dtype == np.float32
    assert _band_fraction(y, 3400) < 0.03  # only the filter's transition band remains
    assert _band_fraction(y, 3700) < 1e-3
    assert _band_fraction(y, 4000) < 1e-6  # the 8 kHz line cannot carry anything above 4 kHz
    assert _band_fraction(y, 0, 200) < 1e-3
    assert _band_fraction(y, 500, 3000) > 0.75  # 2500 of the 3100 Hz pass band


def test_telephone_band_edges_are_parameters() -> None:
    x = (0.1 * _rng(1).standard_normal(SR * 2)).astype(np.float32)
    y = telephone_channel(x, SR, _rng(), low_hz=1000, high_hz=2000, codec="none")
    assert _band_fraction(y, 0, 800) < 1e-3 and _band_fraction(y, 2300) < 1e-3
    assert _band_fraction(y, 1100, 1900) > 0.7  # 800 of the 1000 Hz pass band


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


# ----------------------------------------------------------------------------- speed, pitch, gain


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.1, 1.25])
def test_speed_changes_length_by_the_factor(factor: float) -> None:
    x = sine(200, 1.0, SR)
    y = speed_perturb(x, SR, _rng(), factor=factor)
    assert y.dtype == np.float32 and len(y) == pytest.approx(len(x) / factor, abs=1)
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
    assert len(y) == len(x) and y.dtype == np.float32
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
@given(amp=st.floats(0.01, 1.5), db=st.floats(-20, 30), max_peak=st.sampled_from([0.5, 0.99, 1.0]))
def test_gain_never_clips(amp: float, db: float, max_peak: float) -> None:
    x = sine(300, 0.05, SR, amp)
    y = apply_gain(x, SR, _rng(), gain_db=db, max_peak=max_peak)
    assert np.max(np.abs(y)) <= max_peak + 1e-6
    if amp * 10 ** (db / 20) > max_peak:  # turned down to the limit, not below it
        assert np.max(np.abs(y)) == pytest.approx(max_peak, rel=1e-4)


# ----------------------------------------------------------------------------- the chain the run uses


def _recipe(augment: str, *, source: str = "r.yaml"):
    """Validate a small whisper recipe with these ``data.augment`` items (one YAML flow mapping per line)."""
    items = "".join(f"    - {line}\n" for line in augment.strip().splitlines())
    text = (
        "model:\n  modality: whisper\n  base: openai/whisper-tiny\n  init: scratch\n"
        f"data:\n  format: synthetic\n  augment:\n{items}"
    )
    return validate_text(text, source=source)


def _chain(augment: str, base_dir: Path = Path(".")) -> AugmentedChain:
    result = _recipe(augment)
    assert result.ok, [d.text() for d in result.diagnostics]
    return AugmentedChain.from_recipe(result.recipe, get_registry(), base_dir)


CALL_CENTRE = """
{name: noise, snr_db: [5, 20], kind: [white, pink], p: 0.5}
{name: speed, factor: [0.9, 1.1], p: 0.5}
{name: gain, gain_db: [-6, 6], p: 0.8}
{name: telephone, codec: [mulaw, alaw], p: 0.5}
"""


def test_every_builtin_runs_through_the_chain_with_its_defaults() -> None:
    """The sections' defaults are valid keyword arguments of the registered functions."""
    x = _speechy(0.5)
    chain = _chain("{name: noise}\n{name: speed}\n{name: pitch}\n{name: gain}\n{name: telephone}")
    assert [s.name for s in chain.steps] == ["noise", "speed", "pitch", "gain", "telephone"]
    assert chain.steps[1].apply is speed_perturb and chain.steps[0].params["snr_db"] == (10.0, 30.0)
    y, fired = chain.apply(x, SR, sample_seed(0, 0, 0))
    assert fired == ["noise", "speed", "pitch", "gain", "telephone"]
    assert y.dtype == np.float32 and y.ndim == 1 and np.all(np.isfinite(y)) and not np.allclose(y[: len(x)], x[: len(y)])


def test_ranges_reach_the_functions_as_tuples_or_floats_and_choices_as_written() -> None:
    chain = _chain("{name: noise, snr_db: [5, 20], kind: white, mains_hz: 60}\n{name: speed, factor: 1.1}\n"
                   "{name: telephone, codec: [alaw]}")
    noise, speed, telephone = (step.params for step in chain.steps)
    assert noise["snr_db"] == (5.0, 20.0) and isinstance(noise["snr_db"], tuple)
    assert noise["kind"] == "white" and noise["mains_hz"] == 60.0
    assert speed == {"factor": 1.1} and isinstance(speed["factor"], float)
    assert telephone["codec"] == ["alaw"]  # a one-item list still draws (a resumed run's audio depends on it)


def test_chain_is_deterministic_per_key_and_varies_across_keys() -> None:
    chain = _chain(CALL_CENTRE)
    x = _speechy()
    a = chain(x, SR, sample_seed(7, 2, 11))
    np.testing.assert_array_equal(a, chain(x.copy(), SR, sample_seed(7, 2, 11)))
    for key in [(8, 2, 11), (7, 3, 11), (7, 2, 12)]:  # another seed, epoch or index
        other = chain(x, SR, sample_seed(*key))
        assert other.shape != a.shape or not np.allclose(other, a), key


def test_step_k_draws_from_default_rng_of_seed_epoch_index_k() -> None:
    """The documented contract, computed by hand with the plain functions: resumed runs depend on it."""
    chain = _chain(CALL_CENTRE)
    x = _speechy()
    seed, epoch, index = 3, 1, 42
    by_hand = [
        (add_noise, 0.5, {"snr_db": (5.0, 20.0), "kind": ["white", "pink"]}),
        (speed_perturb, 0.5, {"factor": (0.9, 1.1)}),
        (apply_gain, 0.8, {"gain_db": (-6.0, 6.0)}),
        (telephone_channel, 0.5, {"codec": ["mulaw", "alaw"]}),
    ]
    expected, fired = x, []
    for k, (fn, p, params) in enumerate(by_hand):
        rng = np.random.default_rng([seed, epoch, index, k])
        if rng.random() < p:
            expected = fn(expected, SR, rng, **params)
            fired.append(k)
    assert 0 < len(fired) < len(by_hand)  # this key exercises both a step that fires and one that does not
    got, names = chain.apply(x, SR, sample_seed(seed, epoch, index))
    np.testing.assert_array_equal(got, expected)
    assert names == [chain.steps[k].name for k in fired]
    assert step_rng((seed, epoch, index), 2).random() == np.random.default_rng([3, 1, 42, 2]).random()


def test_changing_one_steps_p_leaves_the_other_steps_randomness_unchanged() -> None:
    """Step 0 (a gain with its own draw) on, off or sometimes: the later steps fire and draw alike."""
    x = sine(300, 0.5, SR, 0.1)
    rest = "{name: noise, snr_db: [5, 20], kind: [white, pink], p: 0.7}\n{name: speed, factor: [0.9, 1.1], p: 0.6}"
    always, never, sometimes = (_chain("{name: gain, gain_db: [4, 8], p: %s}\n" % p + rest) for p in (1, 0, 0.3))
    for i in range(40):
        key = sample_seed(5, 0, i)
        (a, fired_a), (b, fired_b), (_, fired_c) = (c.apply(x, SR, key) for c in (always, never, sometimes))
        assert fired_a[0] == "gain" and fired_a[1:] == fired_b == [n for n in fired_c if n != "gain"]
        # noise scales with the signal and speed is linear: with the same draws the gained clip is a
        # multiple of the other, by the gain step 0 drew
        assert a.shape == b.shape
        scale = float(np.dot(a, b) / np.dot(b, b))
        assert 10 ** (4 / 20) - 1e-4 <= scale <= 10 ** (8 / 20) + 1e-4
        np.testing.assert_allclose(a, scale * b, rtol=1e-4, atol=1e-6)


def test_chain_fires_steps_at_their_probability() -> None:
    chain = _chain("{name: gain, gain_db: -6, p: 0.3}\n{name: gain, gain_db: -6, p: 1}")
    x = sine(300, 0.05, SR, 0.5)
    fired = [chain.apply(x, SR, sample_seed(0, 0, i))[1] for i in range(400)]
    assert 0.22 < sum(len(f) == 2 for f in fired) / 400 < 0.38
    assert all(f[-1:] == ["gain"] for f in fired)


def test_chain_output_is_float32_and_untouched_when_no_step_fires() -> None:
    x = sine(300, 0.05, SR, 0.5)
    chain = AugmentedChain([ChainStep("double", 1.0, {}, lambda w, sr, rng: w.astype(np.float64) * 2)])
    y = chain(x, SR, sample_seed(0, 0, 0))
    assert y.dtype == np.float32 and np.allclose(y, 2 * x)
    np.testing.assert_array_equal(_chain("{name: gain, gain_db: 6, p: 0}")(x, SR, sample_seed(0, 0, 0)), x)


def test_sample_seed_rejects_negative() -> None:
    with pytest.raises(ValueError):
        sample_seed(-1, 0, 0)


def test_describe_is_one_line_for_the_run_log() -> None:
    chain = _chain("{name: telephone, codec: [mulaw, alaw], p: 0.7}\n{name: noise, snr_db: [5, 25], kind: [white, pink], p: 0.6}\n"
                   "{name: gain, gain_db: 3}")
    assert chain.describe() == (
        "telephone(low_hz=300, high_hz=3400, codec=mulaw|alaw, channel_rate=8000) p=0.7"
        " -> noise(snr_db=5..25, kind=white|pink, mains_hz=50|60) p=0.6 -> gain(gain_db=3, max_peak=0.99) p=1"
    )
    assert AugmentedChain().describe() == "no augmentation"


def test_noise_dir_resolves_against_the_recipe_folder(tmp_path: Path) -> None:
    (tmp_path / "noises" / "fans").mkdir(parents=True)
    sf.write(str(tmp_path / "noises" / "fans" / "fan.wav"), sine(1000, 0.2, SR, 0.3), SR)
    chain = _chain("{name: noise, snr_db: 5, noise_dir: noises}", base_dir=tmp_path)
    assert chain.steps[0].params["noise_dir"] == str(tmp_path / "noises")
    clean = _speechy()
    noisy = chain(clean, SR, sample_seed(0, 0, 0))
    assert _snr(clean, noisy) == pytest.approx(5.0, abs=0.05)
    spec = np.abs(np.fft.rfft(noisy - clean))
    assert np.argmax(spec) * SR / len(clean) == pytest.approx(1000, abs=3)


@pytest.mark.parametrize(("folder", "message"), [("absent", "no such folder"), ("empty", "no audio files")])
def test_a_bad_noise_dir_fails_at_its_key_before_training(tmp_path: Path, folder: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not audio")
    with pytest.raises(RecipeRuntimeError, match=message) as caught:
        _chain("{name: gain}\n{name: noise, noise_dir: " + folder + "}", base_dir=tmp_path)
    assert caught.value.path == ("data", "augment", 1, "noise_dir")


# ----------------------------------------------------------------------------- the sections: the one parameter spec


@pytest.mark.parametrize(
    ("item", "where", "message"),
    [
        ("{name: speed, factor: [1.2, 0.8]}", "data.augment[0].factor", r"range \[1.2, 0.8\] is reversed"),
        ("{name: speed, factor: [0.1, 1.0]}", "data.augment[0].factor[0]", "greater than or equal to 0.25"),
        ("{name: speed, factor: 5}", "data.augment[0].factor", "less than or equal to 4"),
        ("{name: speed, factor: [0.9, 1.0, 1.1]}", "data.augment[0].factor", r"a number or a \[low, high\] range, got 3 values"),
        ("{name: pitch, semitones: [-1]}", "data.augment[0].semitones", "got 1 value$"),
        ("{name: noise, snr_db: [5, 100]}", "data.augment[0].snr_db[1]", "less than or equal to 80"),
        ("{name: gain, gain_db: loud}", "data.augment[0].gain_db", "valid number"),
        ("{name: gain, gain_db: true}", "data.augment[0].gain_db", "valid number"),
        ("{name: gain, max_peak: 1.5}", "data.augment[0].max_peak", "less than or equal to 1"),
        ("{name: noise, kind: purple}", "data.augment[0].kind", "'purple' is not allowed; allowed: white, pink, brown, hum, file"),
        ("{name: noise, kind: [white, pnik]}", "data.augment[0].kind[1]", "'pnik' is not allowed.*pink"),
        ("{name: noise, kind: []}", "data.augment[0].kind", "at least 1 item"),
        ("{name: noise, kind: [white, file]}", "data.augment[0]", "kind 'file' needs noise_dir"),
        ("{name: noise, mains_hz: [50, 0]}", "data.augment[0].mains_hz[1]", "greater than or equal to 1"),
        ("{name: noise, rate: 3}", "data.augment[0].rate", "unknown key 'rate'"),
        ("{name: telephone, codec: gsm}", "data.augment[0].codec", "allowed: mulaw, alaw, none"),
        ("{name: telephone, low_hz: 2000, high_hz: 1500}", "data.augment[0]", r"low_hz \(2000\) must be below high_hz \(1500\)"),
        ("{name: telephone, high_hz: 5000}", "data.augment[0]", r"below half the channel_rate \(4000 Hz\)"),
        ("{name: telephone, channel_rate: 8000.5}", "data.augment[0].channel_rate", "valid integer"),
        ("{name: reverb}", "data.augment[0].name", "unknown name 'reverb'"),
        ("{name: gain, p: 1.5}", "data.augment[0].p", "less than or equal to 1"),
    ],
)
def test_sections_reject_bad_parameters_where_they_are_written(item: str, where: str, message: str) -> None:
    result = _recipe(item)
    assert not result.ok
    assert len(result.diagnostics) == 1, [d.text() for d in result.diagnostics]  # one clear message, not one per union member
    diagnostic = result.diagnostics[0]
    assert diagnostic.path == where and diagnostic.line == 8
    assert re.search(message, diagnostic.message), diagnostic.text()


def test_good_parameters_validate() -> None:
    result = _recipe(
        "{name: noise, snr_db: -5, kind: [hum, file], noise_dir: somewhere, mains_hz: [50, 60, 400], p: 0.5}\n"
        "{name: speed, factor: [1, 1]}\n{name: pitch, semitones: [-12, 12]}\n{name: gain, gain_db: [-60, 40], max_peak: 1}\n"
        "{name: telephone, low_hz: 200, high_hz: 7000, channel_rate: 16000, codec: none}"
    )
    assert result.ok, [d.text() for d in result.diagnostics]
    noise, speed, _, _, telephone = result.recipe.data.augment
    assert noise.snr_db == -5.0 and noise.mains_hz == [50.0, 60.0, 400.0] and speed.factor == (1.0, 1.0)
    assert telephone.channel_rate == 8000 * 2
