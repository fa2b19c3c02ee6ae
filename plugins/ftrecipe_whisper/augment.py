"""Seeded audio augmentations for Whisper fine-tuning (numpy + scipy only).

Each augmentation is a pure function ``fn(wave, sr, rng, **params) -> wave`` (float32): all
randomness comes from ``rng``, so the same generator state always gives the same output. A numeric
parameter given as ``(lo, hi)`` is drawn uniformly per call; a number is used as is. A choice
parameter given as a list is drawn uniformly per call; a single value is used as is. The recipe
keys and their bounds are the sections in :mod:`ftrecipe_whisper.sections`; the chain that applies
them during training is :class:`ftrecipe_whisper.chain.AugmentedChain`.

RNG derivation (why a resumed run hears exactly the same audio): the augmented version of dataset
item ``index`` in epoch ``epoch`` of a run seeded ``base_seed`` uses the key
``sample_seed(base_seed, epoch, index) == (base_seed, epoch, index)``. Step ``k`` of the chain
(0-based, in recipe order) draws from ``numpy.random.default_rng([base_seed, epoch, index, k])``;
its first draw decides whether the step applies (``rng.random() < p``), later draws are the
step's own. Nothing depends on global state, worker ids, call order or Python's ``hash``, so a
resumed run, a different number of data-loader workers, or a changed probability of one step
leaves every other step's randomness unchanged.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .audio import load_audio, resample, resample_ratio

__all__ = [
    "add_noise",
    "apply_gain",
    "noise_files",
    "pitch_shift",
    "sample_seed",
    "speed_perturb",
    "step_rng",
    "telephone_channel",
]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
NOISE_KINDS = ("white", "pink", "brown", "hum", "file")
CODECS = ("mulaw", "alaw", "none")


# --------------------------------------------------------------------------- parameter helpers


def _uniform(rng: np.random.Generator, value: float | Sequence[float]) -> float:
    """A scalar stays fixed; ``[lo, hi]`` is drawn uniformly."""
    if isinstance(value, (int, float)):
        return float(value)
    lo, hi = (float(v) for v in value)
    return lo if lo == hi else float(rng.uniform(lo, hi))


def _choose(rng: np.random.Generator, value: Any) -> Any:
    """A single value stays fixed; a list/tuple is drawn uniformly."""
    if isinstance(value, (list, tuple)):
        return value[int(rng.integers(len(value)))]
    return value


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


# --------------------------------------------------------------------------- noise


def _coloured_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    white = rng.standard_normal(n)
    if exponent == 0 or n < 2:
        return white
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n)
    f[0] = f[1]  # avoid division by zero; DC removed below
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def _hum(n: int, sr: int, rng: np.random.Generator, mains_hz: float) -> np.ndarray:
    """Mains hum: the fundamental plus decaying harmonics with random phases (like a ground loop)."""
    t = np.arange(n) / sr
    out = np.zeros(n)
    for h, amp in enumerate((1.0, 0.5, 0.35, 0.2, 0.12), start=1):
        if h * mains_hz < sr / 2:
            out += amp * np.sin(2 * np.pi * h * mains_hz * t + rng.uniform(0, 2 * np.pi))
    return out


@functools.lru_cache(maxsize=16)
def noise_files(noise_dir: str) -> tuple[str, ...]:
    """The audio files under ``noise_dir`` (any depth, sorted); ``ValueError`` when there are none."""
    files = sorted(
        str(p) for p in Path(noise_dir).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
    )
    if not files:
        raise ValueError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found in noise_dir {noise_dir}")
    return tuple(files)


@functools.lru_cache(maxsize=32)
def _noise_file_audio(path: str, sr: int) -> np.ndarray:
    wave = load_audio(path, sr)
    wave.setflags(write=False)
    return wave


def _file_noise(n: int, sr: int, rng: np.random.Generator, noise_dir: str) -> np.ndarray:
    files = noise_files(str(noise_dir))
    src = _noise_file_audio(files[int(rng.integers(len(files)))], sr)
    if src.size < n:
        src = np.tile(src, int(np.ceil(n / src.size)))
    start = int(rng.integers(src.size - n + 1))
    return np.asarray(src[start : start + n], dtype=np.float64)


def add_noise(
    wave: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    snr_db: float | Sequence[float] = (10.0, 30.0),
    kind: str | Sequence[str] | None = None,
    noise_dir: str | os.PathLike[str] | None = None,
    mains_hz: float | Sequence[float] = (50.0, 60.0),
) -> np.ndarray:
    """Add noise at a signal-to-noise ratio drawn from ``snr_db`` (whole-clip power, in dB).

    ``kind``: white, pink, brown, hum (mains fundamental + harmonics) or file (a random excerpt of
    a random file under ``noise_dir``). Default: ``file`` when ``noise_dir`` is set, else one of the
    generated kinds. A silent clip is returned unchanged (its SNR is undefined).
    """
    x = np.asarray(wave, dtype=np.float64)
    if kind is None:
        kind = "file" if noise_dir is not None else ["white", "pink", "brown", "hum"]
    snr = _uniform(rng, snr_db)
    k = _choose(rng, kind)
    p_signal = _power(x)
    if x.size == 0 or p_signal == 0.0:
        return np.asarray(wave, dtype=np.float32).copy()
    n = x.size
    if k == "white":
        noise = _coloured_noise(n, rng, 0.0)
    elif k == "pink":
        noise = _coloured_noise(n, rng, 1.0)
    elif k == "brown":
        noise = _coloured_noise(n, rng, 2.0)
    elif k == "hum":
        noise = _hum(n, sr, rng, float(_choose(rng, mains_hz)))
    elif k == "file":
        if noise_dir is None:
            raise ValueError("noise kind 'file' needs noise_dir")
        noise = _file_noise(n, sr, rng, str(noise_dir))
    else:
        raise ValueError(f"unknown noise kind {k!r}; expected one of {NOISE_KINDS}")
    p_noise = _power(noise)
    if p_noise == 0.0:  # e.g. a silent noise file
        return x.astype(np.float32)
    scale = np.sqrt(p_signal / (p_noise * 10.0 ** (snr / 10.0)))
    return (x + scale * noise).astype(np.float32)


# --------------------------------------------------------------------------- speed / pitch / gain


def _ratio(value: float, max_den: int = 100) -> tuple[int, int]:
    fr = Fraction(value).limit_denominator(max_den)
    return fr.numerator, fr.denominator


def speed_perturb(
    wave: np.ndarray, sr: int, rng: np.random.Generator, *, factor: float | Sequence[float] = (0.9, 1.1)
) -> np.ndarray:
    """Play the clip ``factor`` times faster (Kaldi-style): length / factor, pitch * factor.

    Uses a polyphase resampler with the factor rounded to a ratio with denominator <= 100.
    """
    f = _uniform(rng, factor)
    if f <= 0:
        raise ValueError(f"speed factor must be > 0, got {f}")
    x = np.asarray(wave, dtype=np.float32)
    num, den = _ratio(f)
    if num == den or x.size == 0:
        return x.copy()
    return resample_ratio(x, den, num).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1]


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    win = _hann(n_fft)
    pad = n_fft // 2
    xp = np.pad(x, (pad, pad + n_fft), mode="constant")
    n_frames = 1 + (len(x) + pad * 2 - n_fft) // hop + 1
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft)[::hop][:n_frames]
    return np.fft.rfft(frames * win, axis=1)


def _overlap_add(frames: np.ndarray, hop: int) -> np.ndarray:
    """Sum frames placed ``hop`` apart. With hop = n_fft / k, frames r, r+k, r+2k, ... tile without overlap."""
    count, n_fft = frames.shape
    out = np.zeros(n_fft + hop * (count - 1) + n_fft)
    for r in range(n_fft // hop):
        block = frames[r :: n_fft // hop].reshape(-1)
        out[r * hop : r * hop + block.size] += block
    return out[: n_fft + hop * (count - 1)]


def _istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    win = _hann(n_fft)
    out = _overlap_add(np.fft.irfft(spec, n_fft, axis=1) * win, hop)
    norm = _overlap_add(np.broadcast_to(win**2, (len(spec), n_fft)), hop)
    out /= np.where(norm > 1e-8, norm, 1.0)
    pad = n_fft // 2
    out = out[pad : pad + length]
    return np.pad(out, (0, max(0, length - out.size)))


def _time_stretch(x: np.ndarray, rate: float, n_fft: int) -> np.ndarray:
    """Phase-vocoder time stretch: output length ~ len(x) / rate, pitch unchanged."""
    hop = n_fft // 4
    spec = _stft(x, n_fft, hop)
    spec = np.vstack([spec, np.zeros((1, spec.shape[1]), dtype=spec.dtype)])
    steps = np.arange(0, spec.shape[0] - 1, rate)
    index = steps.astype(int)
    frac = (steps - index)[:, None]
    magnitudes = np.abs(spec)
    magnitude = (1 - frac) * magnitudes[index] + frac * magnitudes[index + 1]
    # The phase advances by each analysis step's phase difference; as unit phasors that is a running
    # product of unit(s1) * conj(unit(s0)), with no angles, wrapping or trigonometry.
    unit = np.divide(spec, magnitudes, out=np.ones_like(spec), where=magnitudes > 0)
    step = unit[index + 1] * np.conj(unit[index])
    rotation = np.empty_like(step)
    rotation[0] = unit[0]
    rotation[1:] = unit[0] * np.cumprod(step[:-1], axis=0)
    stretched = magnitude * rotation
    return _istft(stretched, n_fft, hop, int(round(len(x) / rate)))


def pitch_shift(
    wave: np.ndarray, sr: int, rng: np.random.Generator, *, semitones: float | Sequence[float] = (-2.0, 2.0)
) -> np.ndarray:
    """Shift pitch by a number of semitones keeping the duration (phase vocoder + resampling).

    Simulates speakers with higher or lower voices; output has exactly the input length.
    """
    st = _uniform(rng, semitones)
    x = np.asarray(wave, dtype=np.float64)
    if st == 0 or x.size == 0:
        return x.astype(np.float32)
    ratio = 2.0 ** (st / 12.0)
    n_fft = int(2 ** round(np.log2(max(sr * 0.032, 64))))
    stretched = _time_stretch(x, 1.0 / ratio, n_fft)  # longer by ratio, same pitch
    num, den = _ratio(1.0 / ratio)  # squeeze back: pitch * ratio
    shifted = resample_ratio(stretched, num, den)
    if shifted.size >= x.size:
        shifted = shifted[: x.size]
    else:
        shifted = np.pad(shifted, (0, x.size - shifted.size))
    return shifted.astype(np.float32)


def apply_gain(
    wave: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    gain_db: float | Sequence[float] = (-6.0, 6.0),
    max_peak: float = 0.99,
) -> np.ndarray:
    """Scale by a gain drawn from ``gain_db``, reduced if needed so the peak stays <= ``max_peak``.

    Clip-safe: the output never exceeds ``max_peak`` in absolute value (loud calls are not clipped
    into distortion the real data would not have).
    """
    x = np.asarray(wave, dtype=np.float64)
    g = 10.0 ** (_uniform(rng, gain_db) / 20.0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0 and peak * g > max_peak:
        g = max_peak / peak
    return (x * g).astype(np.float32)


# --------------------------------------------------------------------------- telephone channel


@functools.lru_cache(maxsize=32)
def _band_sos(sr: int, low_hz: float, high_hz: float) -> np.ndarray:
    if not 0 < low_hz < high_hz < sr / 2:
        raise ValueError(f"telephone band {low_hz}-{high_hz} Hz does not fit sample rate {sr}")
    from scipy.signal import ellip  # imported where used: scipy.signal costs half a second

    return ellip(6, 0.5, 60, [low_hz, high_hz], btype="bandpass", output="sos", fs=sr)


def _mulaw(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    q = np.round((y + 1) / 2 * 255) / 255 * 2 - 1  # 8-bit code words
    return np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu


def _alaw(x: np.ndarray, a: float = 87.6) -> np.ndarray:
    ax = np.abs(x)
    small = ax < 1 / a
    y = np.where(small, a * ax, 1 + np.log(np.maximum(a * ax, 1e-12))) / (1 + np.log(a))
    y = np.sign(x) * y
    q = np.round((y + 1) / 2 * 255) / 255 * 2 - 1
    aq = np.abs(q) * (1 + np.log(a))
    return np.sign(q) * np.where(aq < 1, aq / a, np.exp(aq - 1) / a)


def telephone_channel(
    wave: np.ndarray,
    sr: int,
    rng: np.random.Generator,
    *,
    low_hz: float = 300.0,
    high_hz: float = 3400.0,
    codec: str | Sequence[str] = "mulaw",
    channel_rate: int = 8000,
) -> np.ndarray:
    """Simulate a narrow-band phone line: band-pass, 8 kHz resampling, G.711-like companding.

    The band-pass (6th-order elliptic, 60 dB stop band) is applied on the way in and again after
    decoding, like the send and receive filters of a real line, so quantisation noise does not
    leak above ``high_hz``. ``codec``: mulaw (G.711 US), alaw (G.711 EU) or none.
    """
    x = np.asarray(wave, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    c = _choose(rng, codec)
    if c not in CODECS:
        raise ValueError(f"unknown codec {c!r}; expected one of {CODECS}")
    from scipy.signal import sosfilt

    y = sosfilt(_band_sos(sr, low_hz, high_hz), x)
    y = resample(y, sr, channel_rate).astype(np.float64)
    if c != "none":
        y = np.clip(y, -1.0, 1.0)
        y = _mulaw(y) if c == "mulaw" else _alaw(y)
    y = resample(y, channel_rate, sr).astype(np.float64)
    y = sosfilt(_band_sos(sr, low_hz, high_hz), y)
    if y.size >= x.size:
        y = y[: x.size]
    else:
        y = np.pad(y, (0, x.size - y.size))
    return y.astype(np.float32)


# --------------------------------------------------------------------------- seeding


def sample_seed(base_seed: int, epoch: int, index: int) -> tuple[int, int, int]:
    """The augmentation key of dataset item ``index`` in ``epoch`` (see the module docstring)."""
    key = (int(base_seed), int(epoch), int(index))
    if min(key) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {key}")
    return key


def step_rng(seed: int | Sequence[int], step: int) -> np.random.Generator:
    """The generator of chain step ``step`` for a sample key: ``default_rng([*seed, step])``."""
    key = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    return np.random.default_rng([*key, int(step)])
