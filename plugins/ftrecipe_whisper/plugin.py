"""Registration of the Whisper plugin: speech-to-text fine-tuning with audio augmentation and WER.

Torch-free: this module runs on every `ftrecipe validate`; the task imports the heavy libraries.
"""

from __future__ import annotations

from importlib import resources

from ftrecipe.plugin import Augmentation, DatasetFormat, Metric, Modality, Problem, hookimpl, pretrained_check
from ftrecipe_whisper import sections as s

WHISPER = "whisper"


def _check(recipe) -> list[Problem]:
    problems = []
    if recipe.freeze.strategy == "qlora":
        problems.append(Problem(("freeze", "strategy"), "the Whisper plugin trains on full-precision weights; use strategy lora"))
    if recipe.model.task == "translate" and recipe.model.language in ("en", "english"):
        problems.append(Problem(("model", "task"), "translate produces English; with English audio use task: transcribe"))
    return problems


@hookimpl
def ftrecipe_modalities():
    return Modality(
        name=WHISPER,
        section=s.WhisperModel,
        task="ftrecipe_whisper.task:WhisperTask",
        description="Speech recognition: Whisper adapted to a domain's acoustics (call centres, accents, noise).",
        default_metrics=("wer", "cer"),
        starter_recipe=resources.files("ftrecipe_whisper").joinpath("starters", "whisper.yaml").read_text(encoding="utf-8"),
        checks=(_check,),
        run_checks=(pretrained_check(),),
        sections={"evaluation": s.WhisperEvaluation},
        ignores={
            "head": "Whisper keeps its decoder head; the vocabulary comes from the tokenizer",
            "model.quantization": "the Whisper plugin trains on full-precision weights",
        },
        strategies=("ddp", "fsdp", "deepspeed"),
    )


@hookimpl
def ftrecipe_dataset_formats():
    reader = "ftrecipe_whisper.readers:"
    return [
        DatasetFormat("manifest", (WHISPER,), s.ManifestData, reader + "read_manifest_format", "CSV/JSONL manifest of audio paths and transcripts.",
                      required_paths=("train", "eval")),
        DatasetFormat("audiofolder", (WHISPER,), s.AudioFolderData, reader + "read_audiofolder_format", "Audio files with a metadata file.",
                      required_paths=("train", "eval")),
        DatasetFormat("synthetic", (WHISPER,), s.SyntheticSpeechData, reader + "read_synthetic", "Tone-coded words over line noise (offline).",
                      ignores={"data.train": "the clips are generated (train_size)", "data.eval": "the clips are generated (eval_size)",
                               "data.eval_fraction": "evaluation clips are generated apart (eval_size)",
                               "data.columns": "the generated clips have fixed columns"}),
    ]


@hookimpl
def ftrecipe_augmentations():
    fn = "ftrecipe_whisper.augment:"
    return [
        Augmentation("noise", (WHISPER,), s.NoiseAugmentation, fn + "add_noise", "Additive noise at an SNR range."),
        Augmentation("speed", (WHISPER,), s.SpeedAugmentation, fn + "speed_perturb", "Speed perturbation."),
        Augmentation("pitch", (WHISPER,), s.PitchAugmentation, fn + "pitch_shift", "Pitch shift, duration kept."),
        Augmentation("gain", (WHISPER,), s.GainAugmentation, fn + "apply_gain", "Gain change without clipping."),
        Augmentation("telephone", (WHISPER,), s.TelephoneAugmentation, fn + "telephone_channel", "Phone line: band limit, 8 kHz, codec."),
    ]


@hookimpl
def ftrecipe_metrics():
    load = "ftrecipe_whisper.metrics:"
    return [
        Metric("wer", (WHISPER,), load + "load_wer", higher_is_better=False, description="Word error rate."),
        Metric("cer", (WHISPER,), load + "load_cer", higher_is_better=False, description="Character error rate."),
    ]
