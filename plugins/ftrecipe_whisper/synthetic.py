"""Offline synthetic "speech": tone-coded words over phone-line noise, with transcripts.

The demo recipe and the tests need audio a model can actually learn from, without any files or
downloads. Each vocabulary word is a fixed sequence of 1-3 syllables; a syllable is an optional
consonant-like onset (hiss, click, nasal murmur) followed by a voiced vowel: a harmonic series on a
gliding fundamental, shaped by two formant peaks taken from a table of six vowels. Utterances of
1-4 words (about 0.3-2.6 s, 1.25 s on average) vary the speaker per clip (fundamental, vocal-tract scale, tempo,
loudness) and sit on white/pink line noise and mains hum, so the model must learn word identity,
not one exact waveform. Everything stays inside the 300-3400 Hz phone band.

Determinism: a word's code depends only on the word (CRC32-seeded), and clip ``i`` of
``synthetic_clips(n, seed=s)`` depends only on ``(s, i)``, so ``synthetic_clips(5, seed=s)`` equals
the first five of ``synthetic_clips(100, seed=s)``. ``synthetic_durations`` draws the same random
numbers without the signal processing: a clip's length and transcript, at a fraction of the cost
(what ``ftrecipe plan`` needs of a thousand clips).
"""

from __future__ import annotations

import csv
import functools
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from .augment import add_noise

__all__ = [
    "VOCABULARY",
    "Syllable",
    "SyntheticClip",
    "synthesize_utterance",
    "synthetic_clip",
    "synthetic_clips",
    "synthetic_durations",
    "word_code",
    "write_synthetic_audiofolder",
]

#: Default words: the ten digits (as in FSDD) plus a few call-centre words.
VOCABULARY: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "yes", "no", "hello", "agent", "account", "balance",
)  # fmt: skip

# (F1, F2) in Hz of six vowels (roughly i, e, a, o, u, schwa).
_VOWELS: tuple[tuple[float, float], ...] = (
    (280, 2250), (420, 1950), (750, 1250), (520, 900), (320, 800), (560, 1500),
)  # fmt: skip
_ONSETS = ("none", "hiss", "click", "nasal")
_GLIDES = (-1, 0, 1)  # falling, flat, rising pitch


class Syllable(NamedTuple):
    """One syllable of a word code."""

    onset: str
    vowel: int
    glide: int
    length: float  # relative duration, ~0.8-1.2


@functools.lru_cache(maxsize=4096)
def word_code(word: str) -> tuple[Syllable, ...]:
    """The fixed syllable sequence of ``word`` (depends only on the word, via CRC32)."""
    rng = np.random.default_rng(zlib.crc32(word.encode("utf-8")))
    n_syl = int(rng.integers(1, 4))
    return tuple(
        Syllable(
            onset=_ONSETS[int(rng.integers(len(_ONSETS)))],
            vowel=int(rng.integers(len(_VOWELS))),
            glide=_GLIDES[int(rng.integers(len(_GLIDES)))],
            length=float(rng.uniform(0.8, 1.2)),
        )
        for _ in range(n_syl)
    )


def _envelope(n: int, attack: int) -> np.ndarray:
    env = np.ones(n)
    a = max(1, min(attack, n // 2))
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    env[:a] = ramp
    env[n - a :] = ramp[::-1]
    return env


def _band_noise(n: int, sr: int, rng: np.random.Generator, lo: float, hi: float, render: bool) -> np.ndarray:
    white = rng.standard_normal(n)
    if not render:  # the draw is made all the same: what follows depends on the generator's state
        return white
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1 / sr)
    spec[(f < lo) | (f > hi)] = 0
    out = np.fft.irfft(spec, n)
    return out / (np.max(np.abs(out)) + 1e-9)


def _onset(kind: str, sr: int, rng: np.random.Generator, tempo: float, render: bool) -> np.ndarray:
    if kind == "none":
        return np.zeros(0)
    if kind == "hiss":  # fricative-like: high band noise
        n = int(0.06 * tempo * sr)
        return 0.35 * _band_noise(n, sr, rng, 2400, 3400, render) * _envelope(n, n // 4)
    if kind == "click":  # plosive-like: short broadband burst after a closure
        n_gap, n = int(0.03 * tempo * sr), int(0.012 * sr)
        burst = 0.6 * _band_noise(n, sr, rng, 500, 3400, render) * _envelope(n, n // 3)
        return np.concatenate([np.zeros(n_gap), burst])
    n = int(0.05 * tempo * sr)  # nasal-like murmur: low steady tone
    t = np.arange(n) / sr
    return 0.3 * np.sin(2 * np.pi * 250 * t) * _envelope(n, n // 4)


def _vowel(
    syl: Syllable, sr: int, rng: np.random.Generator, f0: float, tract: float, tempo: float, render: bool
) -> np.ndarray:
    n = int(0.11 * syl.length * tempo * sr)
    jitter = rng.standard_normal()
    if not render:
        return np.zeros(n)
    t = np.arange(n) / sr
    # Fundamental glides by +-20% over the vowel; jitter makes each token slightly different.
    f0_track = f0 * (1 + 0.2 * syl.glide * (t / t[-1] - 0.5)) * (1 + 0.01 * jitter)
    phase = 2 * np.pi * np.cumsum(f0_track) / sr
    f1, f2 = (f * tract for f in _VOWELS[syl.vowel])
    out = np.zeros(n)
    rotor = np.exp(1j * phase)  # harmonic h is the imaginary part of rotor**h: one multiply, no sine
    harmonic = rotor.copy()
    for h in range(1, int(3400 / f0) + 1):
        fh = h * f0  # formant weights evaluated at the mean harmonic frequency
        amp = np.exp(-(((fh - f1) / 160) ** 2)) + 0.7 * np.exp(-(((fh - f2) / 240) ** 2)) + 0.02 / h
        out += amp * harmonic.imag
        harmonic *= rotor
    out /= np.max(np.abs(out)) + 1e-9
    return 0.8 * out * _envelope(n, int(0.015 * sr))


def _render_word(word: str, sr: int, rng: np.random.Generator, f0: float, tract: float, tempo: float,
                 render: bool) -> np.ndarray:
    parts: list[np.ndarray] = []
    for syl in word_code(word):
        parts.append(_onset(syl.onset, sr, rng, tempo, render))
        parts.append(_vowel(syl, sr, rng, f0, tract, tempo, render))
    return np.concatenate(parts)


def _check_vocabulary(vocabulary: Sequence[str]) -> tuple[str, ...]:
    vocab = tuple(vocabulary)
    if not vocab:
        raise ValueError("vocabulary is empty")
    bad = [w for w in vocab if not w or any(c.isspace() for c in w)]
    if bad:
        raise ValueError(f"vocabulary words must be non-empty without spaces, got {bad}")
    if len(set(vocab)) != len(vocab):
        raise ValueError("vocabulary has duplicate words")
    codes = [word_code(w) for w in vocab]
    if len(set(codes)) != len(codes):
        raise ValueError("two vocabulary words got the same tone code; rename one")
    return vocab


def synthesize_utterance(
    words: Sequence[str], sr: int, rng: np.random.Generator, *, snr_db: tuple[float, float] = (15.0, 30.0)
) -> np.ndarray:
    """Render ``words`` as one clip with a random speaker and line noise (float32, peak <= 0.9)."""
    return _utterance(words, sr, rng, snr_db, render=True)


def _utterance(words: Sequence[str], sr: int, rng: np.random.Generator, snr_db: tuple[float, float], render: bool) -> np.ndarray:
    """The clip, or (``render`` False) an array of its length drawn with the same random numbers."""
    f0 = float(rng.uniform(100, 220))
    tract = float(rng.uniform(0.92, 1.08))
    tempo = float(rng.uniform(0.85, 1.15))
    parts = [np.zeros(int(rng.uniform(0.05, 0.15) * sr))]
    for j, w in enumerate(words):
        if j:
            parts.append(np.zeros(int(rng.uniform(0.08, 0.2) * sr)))
        parts.append(_render_word(w, sr, rng, f0, tract, tempo, render) * rng.uniform(0.7, 1.0))
    parts.append(np.zeros(int(rng.uniform(0.05, 0.15) * sr)))
    wave = np.concatenate(parts)
    if not render:
        return wave
    wave = wave * rng.uniform(0.3, 0.9)
    wave = add_noise(wave, sr, rng, snr_db=snr_db, kind=["white", "pink", "hum"])
    peak = float(np.max(np.abs(wave)))
    if peak > 0.9:
        wave = wave * (0.9 / peak)
    return wave.astype(np.float32)


def _check_clip_options(min_words: int, max_words: int, sr: int, vocabulary: Sequence[str]) -> tuple[str, ...]:
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    if sr < 8000:
        raise ValueError("sr must be >= 8000 (the words use the 300-3400 Hz band)")
    return _check_vocabulary(vocabulary)


def _clip(index: int, sr: int, seed: int, vocab: tuple[str, ...], min_words: int, max_words: int,
          snr_db: tuple[float, float], render: bool) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng([int(seed), index])
    k = int(rng.integers(min_words, max_words + 1))
    words = [vocab[int(j)] for j in rng.integers(len(vocab), size=k)]
    return _utterance(words, sr, rng, snr_db, render), " ".join(words)


def synthetic_clip(
    index: int,
    sr: int = 16_000,
    seed: int = 0,
    *,
    vocabulary: Sequence[str] = VOCABULARY,
    min_words: int = 1,
    max_words: int = 4,
    snr_db: tuple[float, float] = (15.0, 30.0),
) -> tuple[np.ndarray, str]:
    """Clip ``index`` of :func:`synthetic_clips` with these options, alone: (waveform, transcript)."""
    vocab = _check_clip_options(min_words, max_words, sr, vocabulary)
    return _clip(int(index), sr, seed, vocab, min_words, max_words, snr_db, render=True)


def synthetic_clips(
    n: int,
    sr: int = 16_000,
    seed: int = 0,
    *,
    vocabulary: Sequence[str] = VOCABULARY,
    min_words: int = 1,
    max_words: int = 4,
    snr_db: tuple[float, float] = (15.0, 30.0),
) -> list[tuple[np.ndarray, str]]:
    """``n`` deterministic (waveform float32 at ``sr``, transcript) pairs of tone-coded words.

    Transcripts are the words joined by single spaces (lower case, already normalised).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    vocab = _check_clip_options(min_words, max_words, sr, vocabulary)
    return [_clip(i, sr, seed, vocab, min_words, max_words, snr_db, render=True) for i in range(n)]


def synthetic_durations(
    n: int,
    sr: int = 16_000,
    seed: int = 0,
    *,
    vocabulary: Sequence[str] = VOCABULARY,
    min_words: int = 1,
    max_words: int = 4,
) -> list[tuple[float, str]]:
    """(seconds, transcript) of each of :func:`synthetic_clips`' clips with these options, without rendering them."""
    if n < 0:
        raise ValueError("n must be >= 0")
    vocab = _check_clip_options(min_words, max_words, sr, vocabulary)
    return [(len(wave) / sr, text) for wave, text in
            (_clip(i, sr, seed, vocab, min_words, max_words, (15.0, 30.0), render=False) for i in range(n))]


@dataclass(frozen=True)
class SyntheticClip:
    """Clip ``index`` of ``synthetic_clips(..., seed=seed, max_words=max_words)`` at 16 kHz, rendered when first
    heard: a plan needs only its length and transcript, which :func:`synthetic_durations` gives without rendering."""

    seed: int
    index: int
    max_words: int = 4

    @functools.cached_property
    def wave(self) -> np.ndarray:
        return synthetic_clip(self.index, seed=self.seed, max_words=self.max_words)[0]

    @property
    def key(self) -> str:
        """The clip's identity (two clips with one key have the same samples)."""
        return f"synthetic:{self.seed}:{self.index}:{self.max_words}"


def write_synthetic_audiofolder(
    out_dir: str | os.PathLike[str], n: int, sr: int = 16_000, seed: int = 0, **kwargs: object
) -> Path:
    """Write ``synthetic_clips`` as 16-bit WAVs + ``metadata.csv`` (file_name, text, speaker): an audiofolder.

    Lets the file-based path (manifest reading, validation, listening) run on the same data.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (wave, text) in enumerate(synthetic_clips(n, sr, seed, **kwargs)):  # type: ignore[arg-type]
        name = f"synth_{i:05d}.wav"
        sf.write(str(out / name), wave, sr, subtype="PCM_16")
        rows.append({"file_name": name, "text": text, "speaker": f"synth{i % 4}"})
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file_name", "text", "speaker"])
        writer.writeheader()
        writer.writerows(rows)
    return out
