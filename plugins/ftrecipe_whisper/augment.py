"""Seeded, on-the-fly audio augmentations for Whisper fine-tuning (numpy + scipy only).

Each augmentation is a pure function ``fn(wave, sr, rng, **params) -> wave``: all randomness comes
from ``rng``, so the same generator state always gives the same output. Numeric parameters given
as ``[lo, hi]`` are drawn uniformly per call; a scalar is used as is. Choice parameters given as a
list are drawn uniformly per call.

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

import csv
import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import soundfile as sf
from scipy.signal import ellip, sosfilt

from .audio import load_audio, resample, resample_ratio

__all__ = [
    "AUGMENTATIONS",
    "AugmentChain",
    "AugmentStep",
    "Augmentation",
    "Param",
    "add_noise",
    "apply_gain",
    "augmentation_specs",
    "pitch_shift",
    "sample_seed",
    "save_augmented",
    "speed_perturb",
    "step_rng",
    "telephone_channel",
    "validate_params",
]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
NOISE_KINDS = ("white", "pink", "brown", "hum", "file")
CODECS = ("mulaw", "alaw", "none")


class AugmentFn(Protocol):
    def __call__(self, wave: np.ndarray, sr: int, rng: np.random.Generator, **params: Any) -> np.ndarray: ...


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
def _noise_files(noise_dir: str) -> tuple[str, ...]:
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
    files = _noise_files(str(noise_dir))
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


# --------------------------------------------------------------------------- registry


class Param(NamedTuple):
    """One recipe parameter of an augmentation.

    ``kind``: "range" (scalar or [lo, hi], drawn uniformly), "choice" (value or list of values,
    drawn uniformly), "number" (fixed float), "path" (a folder) or "int".
    """

    kind: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "default": list(self.default) if isinstance(self.default, tuple) else self.default}
        d["help"] = self.help
        if self.choices is not None:
            d["choices"] = list(self.choices)
        if self.minimum is not None:
            d["minimum"] = self.minimum
        if self.maximum is not None:
            d["maximum"] = self.maximum
        return d


class Augmentation(NamedTuple):
    """Registry entry: the function and its parameter spec (unpacks as ``fn, params``)."""

    fn: Callable[..., np.ndarray]
    params: dict[str, Param]

    @property
    def help(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]


AUGMENTATIONS: dict[str, Augmentation] = {
    "noise": Augmentation(
        add_noise,
        {
            "snr_db": Param("range", (10.0, 30.0), "signal-to-noise ratio in dB", minimum=-20, maximum=80),
            "kind": Param("choice", None, "noise type(s); default file if noise_dir else generated", NOISE_KINDS),
            "noise_dir": Param("path", None, "folder of noise recordings (any depth)"),
            "mains_hz": Param("choice", (50.0, 60.0), "mains frequency for hum", minimum=1, maximum=1000),
        },
    ),
    "speed": Augmentation(
        speed_perturb,
        {"factor": Param("range", (0.9, 1.1), "speed factor (>1 faster and shorter)", minimum=0.25, maximum=4.0)},
    ),
    "pitch": Augmentation(
        pitch_shift,
        {"semitones": Param("range", (-2.0, 2.0), "pitch shift in semitones", minimum=-12, maximum=12)},
    ),
    "gain": Augmentation(
        apply_gain,
        {
            "gain_db": Param("range", (-6.0, 6.0), "gain in dB (limited to avoid clipping)", minimum=-60, maximum=40),
            "max_peak": Param("number", 0.99, "largest allowed absolute sample", minimum=0.01, maximum=1.0),
        },
    ),
    "telephone": Augmentation(
        telephone_channel,
        {
            "low_hz": Param("number", 300.0, "lower band edge in Hz", minimum=20, maximum=2000),
            "high_hz": Param("number", 3400.0, "upper band edge in Hz", minimum=1000, maximum=7900),
            "codec": Param("choice", "mulaw", "companding codec(s)", CODECS),
            "channel_rate": Param("int", 8000, "sample rate of the line in Hz", minimum=4000, maximum=48000),
        },
    ),
}


def augmentation_specs() -> dict[str, dict[str, Any]]:
    """JSON-ready description of every augmentation and its parameters (for schemas and docs)."""
    return {
        name: {"help": aug.help, "params": {k: p.to_dict() for k, p in aug.params.items()}}
        for name, aug in AUGMENTATIONS.items()
    }


def _check_number(name: str, key: str, v: Any, spec: Param) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{name}.{key}: expected a number, got {v!r}")
    if spec.minimum is not None and v < spec.minimum or spec.maximum is not None and v > spec.maximum:
        raise ValueError(f"{name}.{key}: {v} outside [{spec.minimum}, {spec.maximum}]")
    return float(v)


def validate_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``params`` against the registry and fill defaults; raises ``ValueError`` on mistakes.

    Run when a recipe is loaded, so a typo fails before training rather than mid-epoch.
    """
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; available: {sorted(AUGMENTATIONS)}")
    spec = AUGMENTATIONS[name].params
    params = dict(params or {})
    unknown = set(params) - set(spec)
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {sorted(unknown)}; allowed: {sorted(spec)}")
    out: dict[str, Any] = {}
    for key, p in spec.items():
        v = params.get(key, p.default)
        if v is None:
            out[key] = None
            continue
        if p.kind == "range":
            if isinstance(v, (list, tuple)):
                if len(v) != 2:
                    raise ValueError(f"{name}.{key}: a range needs [lo, hi], got {v!r}")
                lo, hi = (_check_number(name, key, x, p) for x in v)
                if lo > hi:
                    raise ValueError(f"{name}.{key}: lo {lo} > hi {hi}")
                v = (lo, hi)
            else:
                v = _check_number(name, key, v, p)
        elif p.kind == "choice":
            values = list(v) if isinstance(v, (list, tuple)) else [v]
            if not values:
                raise ValueError(f"{name}.{key}: empty choice list")
            for x in values:
                if p.choices is not None and x not in p.choices:
                    raise ValueError(f"{name}.{key}: {x!r} not in {list(p.choices)}")
                if p.choices is None:
                    _check_number(name, key, x, p)
            v = tuple(values) if isinstance(v, (list, tuple)) else v
        elif p.kind in ("number", "int"):
            v = _check_number(name, key, v, p)
            v = int(v) if p.kind == "int" else v
        elif p.kind == "path":
            v = str(v)
        out[key] = v
    if name == "noise":
        kinds = out["kind"] if isinstance(out["kind"], tuple) else (out["kind"],)
        if "file" in kinds and out["noise_dir"] is None:
            raise ValueError("noise: kind 'file' needs noise_dir")
        if out["noise_dir"] is not None and not Path(out["noise_dir"]).is_dir():
            raise ValueError(f"noise: noise_dir {out['noise_dir']} is not a folder")
    if name == "telephone" and out["low_hz"] >= out["high_hz"]:
        raise ValueError("telephone: low_hz must be below high_hz")
    return out


# --------------------------------------------------------------------------- chain


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


@dataclass(frozen=True)
class AugmentStep:
    """One validated chain item: augmentation ``name`` with full ``params``, applied with probability ``p``."""

    name: str
    params: Mapping[str, Any]
    p: float = 1.0

    def describe(self) -> str:
        shown = []
        for k, v in self.params.items():
            if v is None:
                continue
            if isinstance(v, tuple) and AUGMENTATIONS[self.name].params[k].kind == "range":
                shown.append(f"{k}={v[0]:g}..{v[1]:g}")
            elif isinstance(v, tuple):
                shown.append(f"{k}={'|'.join(str(x) for x in v)}")
            elif isinstance(v, float):
                shown.append(f"{k}={v:g}")
            else:
                shown.append(f"{k}={v}")
        return f"{self.name}({', '.join(shown)}) p={self.p:g}"


class AugmentChain:
    """Apply augmentations in order, each with its probability, deterministically per sample key."""

    def __init__(self, steps: Iterable[tuple[str, Mapping[str, Any] | None, float] | AugmentStep] = ()) -> None:
        built: list[AugmentStep] = []
        for item in steps:
            name, params, p = (item.name, item.params, item.p) if isinstance(item, AugmentStep) else item
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: probability p must be in [0, 1], got {p!r}")
            built.append(AugmentStep(name, validate_params(name, params), float(p)))
        self.steps: tuple[AugmentStep, ...] = tuple(built)

    @classmethod
    def from_config(cls, items: Iterable[Mapping[str, Any]]) -> AugmentChain:
        """Build from recipe items ``{"name": ..., "p": 0.5, "params": {...}}`` (p defaults to 1)."""
        steps = []
        for item in items:
            extra = set(item) - {"name", "p", "params"}
            if "name" not in item or extra:
                raise ValueError(f"augmentation item needs 'name' (+ optional 'p', 'params'), got {dict(item)}")
            steps.append((item["name"], item.get("params") or {}, item.get("p", 1.0)))
        return cls(steps)

    def __len__(self) -> int:
        return len(self.steps)

    def describe(self) -> str:
        """One line for the run log, e.g. ``noise(snr_db=5..20, ...) p=0.5 -> speed(...) p=0.3``."""
        return " -> ".join(s.describe() for s in self.steps) if self.steps else "no augmentation"

    def apply(self, wave: np.ndarray, sr: int, seed: int | Sequence[int]) -> tuple[np.ndarray, list[str]]:
        """Augment ``wave`` and also return the names of the steps that fired (for logs/listening)."""
        out = np.asarray(wave, dtype=np.float32)
        applied: list[str] = []
        for k, step in enumerate(self.steps):
            rng = step_rng(seed, k)
            if rng.random() < step.p:
                out = AUGMENTATIONS[step.name].fn(out, sr, rng, **step.params)
                applied.append(step.name)
        return np.asarray(out, dtype=np.float32), applied

    def __call__(self, wave: np.ndarray, sr: int, seed: int | Sequence[int]) -> np.ndarray:
        """Augmented copy of ``wave``; ``seed`` is typically ``sample_seed(base_seed, epoch, index)``."""
        return self.apply(wave, sr, seed)[0]


# --------------------------------------------------------------------------- listening aid


def _clip_audio(clip: Any, sr: int) -> tuple[np.ndarray, str, str]:
    """(wave, transcript, source) from a manifest Clip, a path, an array or a (array, text) pair."""
    if hasattr(clip, "audio_path"):
        return load_audio(clip.audio_path, sr), str(getattr(clip, "transcript", "")), str(clip.audio_path)
    if isinstance(clip, (str, os.PathLike)):
        return load_audio(clip, sr), "", str(clip)
    if isinstance(clip, tuple) and len(clip) == 2:
        return np.asarray(clip[0], dtype=np.float32), str(clip[1]), "<array>"
    return np.asarray(clip, dtype=np.float32), "", "<array>"


def save_augmented(
    clips: Sequence[Any],
    chain: AugmentChain,
    n: int,
    out_dir: str | os.PathLike[str],
    sr: int = 16_000,
    *,
    seed: int = 0,
    epoch: int = 0,
) -> list[Path]:
    """Write ``n`` augmented WAVs (16-bit, cycling through ``clips``) so a person can hear training audio.

    Item ``i`` uses key ``sample_seed(seed, epoch, i)``, exactly what training with that seed sees
    for dataset index ``i``. ``out_dir`` becomes an audiofolder: ``metadata.csv`` has file_name,
    text, source and the steps that fired; ``chain.txt`` holds :meth:`AugmentChain.describe`.
    """
    if not clips:
        raise ValueError("save_augmented needs at least one clip")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    rows: list[dict[str, str]] = []
    for i in range(n):
        wave, text, source = _clip_audio(clips[i % len(clips)], sr)
        aug, applied = chain.apply(wave, sr, sample_seed(seed, epoch, i))
        path = out / f"aug_{i:04d}.wav"
        sf.write(str(path), np.clip(aug, -1.0, 1.0), sr, subtype="PCM_16")
        paths.append(path)
        rows.append({"file_name": path.name, "text": text, "source": source, "applied": "+".join(applied)})
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file_name", "text", "source", "applied"])
        writer.writeheader()
        writer.writerows(rows)
    (out / "chain.txt").write_text(chain.describe() + "\n", encoding="utf-8")
    return paths
