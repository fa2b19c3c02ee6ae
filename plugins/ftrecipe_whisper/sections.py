"""Recipe sections the Whisper plugin contributes (torch-free: imported by `ftrecipe validate`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag, field_validator, model_validator

from ftrecipe.plugin import LOCAL_PATH, AugmentationSection, DataSection, EvaluationSection, GenerationSettings, ModelSection, Section


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


class GroupedAudioData(AudioData):
    """Audio read from a manifest, whose other columns can split the evaluation into groups."""

    group_by: str | list[str] | None = None
    """Manifest column(s) to report WER and CER per group before and after training: ``speaker``, or a
    list such as ``[speaker, accent]`` (one table per column). A canonical name (``speaker``) follows
    ``columns``. Groups whose WER rose are flagged; every table lands in ``eval_groups.json`` and
    ``summary.json`` (``eval_report.groups``, the final evaluation's)."""

    @field_validator("group_by")
    @classmethod
    def _distinct(cls, value: str | list[str] | None) -> str | list[str] | None:
        names = [value] if isinstance(value, str) else value
        if names is not None:
            if not names or any(not name.strip() for name in names):
                raise ValueError("name one or more manifest columns, e.g. speaker or [speaker, accent]")
            if len(set(names)) != len(names):
                raise ValueError(f"a column is named twice in {names}")
        return value

    @property
    def group_columns(self) -> list[str]:
        """``group_by`` as a list (empty when unset)."""
        return [self.group_by] if isinstance(self.group_by, str) else list(self.group_by or [])


class ManifestData(GroupedAudioData):
    """A CSV / TSV / JSONL manifest: audio path, transcript, optional speaker and duration.

    Canonical ``columns``: ``audio``, ``text``, ``speaker``, ``duration`` (common names are
    guessed). Relative audio paths resolve against the manifest's folder.
    """

    format: Literal["manifest"]


class AudioFolderData(GroupedAudioData):
    """A folder of audio files with ``metadata.csv`` / ``metadata.jsonl`` (``file_name`` + transcript)."""

    format: Literal["audiofolder"]


class SyntheticSpeechData(AudioData):
    """Tone-coded words over line noise, with transcripts, synthesised offline (demos, smoke tests)."""

    format: Literal["synthetic"]
    train_size: Annotated[int, Field(ge=1)] = 600
    eval_size: Annotated[int, Field(ge=1)] = 48
    max_words: Annotated[int, Field(ge=1, le=8)] = 3


# ----------------------------------------------------------------------------- augmentations
#
# These sections are the one parameter spec of the built-in augmentations: what a recipe may write,
# the reference `ftrecipe schema` shows, and exactly the keyword arguments the functions in
# ftrecipe_whisper.augment receive (a range arrives as a float or a (low, high) tuple, a choice as a
# value or a list). Numbers are strict: `true` or "5" is a mistake, not 1 or 5.


def _number(minimum: float, maximum: float) -> Any:
    return Annotated[float, Field(ge=minimum, le=maximum, strict=True)]


def _range_or_number(value: Any) -> str:
    return "range" if isinstance(value, (list, tuple)) else "number"


def _two_ends(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) != 2:
        raise ValueError(f"expected a number or a [low, high] range, got {len(value)} value{'s' * (len(value) != 1)}")
    return value


def _ordered(value: float | tuple[float, float]) -> float | tuple[float, float]:
    if isinstance(value, tuple) and value[0] > value[1]:
        raise ValueError(f"the range [{value[0]:g}, {value[1]:g}] is reversed: low must not exceed high")
    return value


def range_of(minimum: float, maximum: float) -> Any:
    """A number, or ``[low, high]`` drawn uniformly per clip; both ends within ``[minimum, maximum]``."""
    number = _number(minimum, maximum)
    return Annotated[
        Union[Annotated[tuple[number, number], Tag("range")], Annotated[number, Tag("number")]],  # noqa: UP007
        Discriminator(_range_or_number),
        BeforeValidator(_two_ends),
        AfterValidator(_ordered),
    ]


def _one_or_list(value: Any) -> str:
    return "list" if isinstance(value, (list, tuple)) else "one"


def choice_of(item: Any) -> Any:
    """One value, or a non-empty list of values of which each clip draws one uniformly."""
    return Annotated[
        Union[Annotated[item, Tag("one")], Annotated[list[item], Field(min_length=1), Tag("list")]],  # noqa: UP007
        Discriminator(_one_or_list),
    ]


SnrDb = range_of(-20, 80)
SpeedFactor = range_of(0.25, 4.0)
Semitones = range_of(-12, 12)
GainDb = range_of(-60, 40)
MaxPeak = _number(0.01, 1.0)
NoiseKinds = choice_of(Literal["white", "pink", "brown", "hum", "file"])
MainsHz = choice_of(_number(1, 1000))
LowHz = _number(20, 2000)
HighHz = _number(1000, 7900)
Codecs = choice_of(Literal["mulaw", "alaw", "none"])
ChannelRate = Annotated[int, Field(ge=4000, le=48000, strict=True)]


class NoiseAugmentation(AugmentationSection):
    """Additive noise at a signal-to-noise ratio drawn from a range (a silent clip is left alone)."""

    name: Literal["noise"]
    snr_db: SnrDb = (10.0, 30.0)
    """Signal-to-noise ratio in dB over the whole clip: a number, or [low, high] drawn per clip (-20 to 80)."""
    kind: NoiseKinds | None = None
    """Noise type, or a list to draw from per clip: ``white``, ``pink`` (1/f), ``brown`` (1/f²), ``hum``
    (mains fundamental and harmonics) or ``file`` (a random excerpt of a recording in ``noise_dir``).
    Default: ``file`` when ``noise_dir`` is set, else one of the generated kinds."""
    noise_dir: Annotated[str | None, LOCAL_PATH] = None
    """Folder of noise recordings (searched at any depth; wav, flac, ogg, mp3, aiff), relative to the
    recipe. Needed by ``kind: file``."""
    mains_hz: MainsHz = [50.0, 60.0]
    """Mains frequency of ``hum`` in Hz, or a list to draw from per clip (50 in most of the world, 60 in
    the Americas)."""

    @model_validator(mode="after")
    def _file_needs_folder(self) -> NoiseAugmentation:
        kinds = self.kind if isinstance(self.kind, list) else [self.kind]
        if "file" in kinds and self.noise_dir is None:
            raise ValueError("kind 'file' needs noise_dir, the folder of noise recordings")
        return self


class SpeedAugmentation(AugmentationSection):
    """Speed perturbation (Kaldi-style): faster and shorter, or slower and longer; pitch moves with it."""

    name: Literal["speed"]
    factor: SpeedFactor = (0.9, 1.1)
    """Speed factor, or [low, high] drawn per clip (0.25 to 4): 1.1 plays 10% faster and shorter."""


class PitchAugmentation(AugmentationSection):
    """Pitch shift in semitones, duration kept (higher or lower voices)."""

    name: Literal["pitch"]
    semitones: Semitones = (-2.0, 2.0)
    """Shift in semitones, or [low, high] drawn per clip (-12 to 12; 12 is an octave up)."""


class GainAugmentation(AugmentationSection):
    """Loudness change in dB, limited so the wave never clips."""

    name: Literal["gain"]
    gain_db: GainDb = (-6.0, 6.0)
    """Gain in dB, or [low, high] drawn per clip (-60 to 40); turned down where it would push the peak
    above ``max_peak``."""
    max_peak: MaxPeak = 0.99
    """Largest absolute sample after the gain (full scale is 1)."""


class TelephoneAugmentation(AugmentationSection):
    """A phone line: band-pass (send and receive filters), an 8 kHz channel, optional G.711 companding."""

    name: Literal["telephone"]
    low_hz: LowHz = 300.0
    """Lower edge of the pass band in Hz (20 to 2000)."""
    high_hz: HighHz = 3400.0
    """Upper edge of the pass band in Hz (1000 to 7900): above ``low_hz`` and below half ``channel_rate``."""
    codec: Codecs = "mulaw"
    """Companding codec, or a list to draw from per clip: ``mulaw`` (G.711 North America, Japan), ``alaw``
    (G.711 Europe) or ``none``."""
    channel_rate: ChannelRate = 8000
    """Sample rate of the line in Hz (4000 to 48000); it carries nothing above half of it."""

    @model_validator(mode="after")
    def _band(self) -> TelephoneAugmentation:
        if self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz ({self.low_hz:g}) must be below high_hz ({self.high_hz:g})")
        if self.high_hz >= self.channel_rate / 2:
            raise ValueError(f"high_hz ({self.high_hz:g}) must be below half the channel_rate "
                             f"({self.channel_rate / 2:g} Hz), the highest frequency the line carries")
        return self
