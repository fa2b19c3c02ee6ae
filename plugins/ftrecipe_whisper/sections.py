"""Recipe sections the Whisper plugin contributes (torch-free: imported by `ftrecipe validate`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ftrecipe.plugin import AugmentationSection, DataSection, EvaluationSection, GenerationSettings, ModelSection, Section

Range = tuple[float, float] | float


class WhisperModel(ModelSection):
    """A Whisper checkpoint (any size) fine-tuned for speech recognition."""

    modality: Literal["whisper"]
    language: str | None = "en"
    """Spoken language for the decoder prompt (``en``, ``english``, ...); null lets Whisper detect it."""
    task: Literal["transcribe", "translate"] = "transcribe"
    """Transcribe in the spoken language, or translate to English."""
    timestamps: bool = False
    """Predict timestamp tokens (off: plain transcripts)."""


class WhisperEvaluation(EvaluationSection):
    """How the model is measured before and after training: loss, and WER/CER of generated transcripts."""

    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    """Decoding of the transcripts (capped at the decoder's length)."""


class TranscriptNormalization(Section):
    """How transcripts (and predictions, before WER) are normalised."""

    lowercase: bool = True
    punctuation: bool = True
    """Remove punctuation (apostrophes inside words are kept)."""
    numbers: bool = True
    """Spell digits as words: "7" -> "seven"."""


class AudioData(DataSection):
    """Common options of the audio formats."""

    max_seconds: Annotated[float, Field(gt=0, le=30)] = 30.0
    """Clips longer than this (the model's window) are reported and skipped, or fatal per on_error."""
    normalize: TranscriptNormalization = Field(default_factory=TranscriptNormalization)


class ManifestData(AudioData):
    """A CSV / TSV / JSONL manifest: audio path, transcript, optional speaker and duration.

    Canonical ``columns``: ``audio``, ``text``, ``speaker``, ``duration`` (common names are
    guessed). Relative audio paths resolve against the manifest's folder.
    """

    format: Literal["manifest"]


class AudioFolderData(AudioData):
    """A folder of audio files with ``metadata.csv`` / ``metadata.jsonl`` (``file_name`` + transcript)."""

    format: Literal["audiofolder"]


class SyntheticSpeechData(AudioData):
    """Tone-coded words over line noise, with transcripts, synthesised offline (demos, smoke tests)."""

    format: Literal["synthetic"]
    train_size: Annotated[int, Field(ge=1)] = 600
    eval_size: Annotated[int, Field(ge=1)] = 48
    max_words: Annotated[int, Field(ge=1, le=8)] = 3


# ----------------------------------------------------------------------------- augmentations


class NoiseAugmentation(AugmentationSection):
    """Additive noise at a signal-to-noise ratio drawn from a range."""

    name: Literal["noise"]
    snr_db: Range = (10.0, 30.0)
    """SNR in dB: a number or a [low, high] range."""
    kind: Literal["white", "pink", "brown", "hum", "file"] | list[Literal["white", "pink", "brown", "hum", "file"]] | None = None
    """Noise type(s); ``file`` draws from ``noise_dir``. Default: files if noise_dir is set, else generated."""
    noise_dir: str | None = None
    """Folder of noise recordings (any depth)."""


class SpeedAugmentation(AugmentationSection):
    """Speed perturbation: faster and shorter, or slower and longer (pitch moves too)."""

    name: Literal["speed"]
    factor: Range = (0.9, 1.1)


class PitchAugmentation(AugmentationSection):
    """Pitch shift in semitones, duration kept."""

    name: Literal["pitch"]
    semitones: Range = (-2.0, 2.0)


class GainAugmentation(AugmentationSection):
    """Loudness change in dB, limited so the wave never clips."""

    name: Literal["gain"]
    gain_db: Range = (-6.0, 6.0)


class TelephoneAugmentation(AugmentationSection):
    """A phone line: band-limited to 300-3400 Hz, through an 8 kHz channel, optional companding codec."""

    name: Literal["telephone"]
    low_hz: Annotated[float, Field(ge=20, le=2000)] = 300.0
    high_hz: Annotated[float, Field(ge=1000, le=7900)] = 3400.0
    codec: Literal["mulaw", "alaw", "none"] | list[Literal["mulaw", "alaw", "none"]] = "mulaw"
    channel_rate: Annotated[int, Field(ge=4000, le=48000)] = 8000

    @model_validator(mode="after")
    def _band(self) -> TelephoneAugmentation:
        if self.low_hz >= self.high_hz:
            raise ValueError("low_hz must be below high_hz")
        return self
