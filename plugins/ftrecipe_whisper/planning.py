"""What `ftrecipe plan` learns about a Whisper recipe before any weight is downloaded.

The model is built on the meta device from its config: a local directory's config.json, the configs
this plugin carries for the openai/whisper-* checkpoints (``configs/<org>--<name>.json``: the
architecture fields of the hub's config.json), or the Hugging Face cache; a scratch model's config is
the one ``build_model`` would load (its vocabulary depends on the transcripts). The forward pass is a
full window of audio with the longest labels the decoder takes. The data is the reader's clips, less
those longer than the model's window and those whose transcripts the decoder cannot take (``build_data``
skips both), in hours of audio.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ftrecipe.plugin import DataGuidance, DatasetSplits, PlanData, RecipeRuntimeError, find_config
from ftrecipe_whisper.manifest import MIN_HOURS_GUIDANCE
from ftrecipe_whisper.precision import stored_dtype, weight_dtype
from ftrecipe_whisper.synthetic import SyntheticClip

if TYPE_CHECKING:
    from transformers import WhisperConfig

CONFIGS = Path(__file__).with_name("configs")
LONGEST_COUNTED = 32
"""Transcripts tokenized to find the longest label sequence (the longest by characters)."""
PREFIX_TOKENS = 4
"""<|startoftranscript|>, the language, the task and <|notimestamps|>."""
GUIDANCE = DataGuidance(MIN_HOURS_GUIDANCE, "audio_hours", f"the seed: Whisper needs about {MIN_HOURS_GUIDANCE:g} hours of audio")
#: Every Whisper checkpoint listens in windows of 30 s (1500 encoder positions, 50 a second).
WINDOW_SECONDS = 30.0
POSITIONS_PER_SECOND = 50
#: A placeholder transcript for a scratch tokenizer whose transcripts cannot be read here.
PLACEHOLDER_TRANSCRIPTS = ["zero one two three four five six seven eight nine"]


# -- configs --------------------------------------------------------------------------------------
def base_config(model: Any) -> WhisperConfig:
    """The base's config: a local directory's config.json, a carried config, or the Hugging Face cache."""
    from transformers import WhisperConfig

    return find_config(model.base, load=WhisperConfig.from_pretrained, from_dict=WhisperConfig.from_dict, carried=CONFIGS,
                       revision=model.revision)


def clip_key(row: dict[str, Any]) -> tuple[str, str]:
    """A clip's identity: its file (or its samples, for generated audio) and its transcript."""
    audio = row["audio"]
    if isinstance(audio, SyntheticClip):
        return audio.key, row["text"]
    source = os.path.realpath(audio) if isinstance(audio, str) else hashlib.sha1(np.asarray(audio).tobytes()).hexdigest()
    return source, row["text"]


def is_hours_warning(message: str) -> bool:
    """The reader's "only N h of training audio" warning: the plan says it from the guidance instead."""
    return message.startswith("only ") and "of training audio" in message


# -- the plan -------------------------------------------------------------------------------------
class WhisperPlan:
    """The Whisper task's plan: one window of audio and the decoder's longest labels per example."""

    def __init__(self, task: Any) -> None:
        self.task, self.recipe = task, task.recipe
        self.scratch = task._from_config()

    @property
    def splits(self) -> DatasetSplits | None:
        """The format reader's rows, read once per task; None when they cannot be read here."""
        return self.task.plan_splits()

    @property
    def unavailable(self) -> str | None:
        return self.task.plan_unavailable

    @functools.cached_property
    def config(self) -> WhisperConfig:
        """The config ``build_model`` loads: the base's, or the scratch model's built from the transcripts."""
        if not self.scratch:
            return base_config(self.recipe.model)
        from transformers import WhisperConfig

        # The tiny model's vocabulary is a BPE of the transcripts: build it as build_data does.
        transcripts = [row["text"] for row in self.splits.train] if self.splits is not None else PLACEHOLDER_TRANSCRIPTS
        self.task._build_processor(transcripts)
        return WhisperConfig.from_pretrained(self.task.source)

    def dtype(self) -> torch.dtype:
        """What ``build_model`` loads in: ``model.dtype``, float32 for ``auto`` (also on a checkpoint stored
        in float16, such as whisper-large-v3: training keeps float32 master weights); a scratch model's own."""
        if not self.scratch:
            return weight_dtype(self.recipe)
        return stored_dtype(self.config) or torch.float32

    def model(self) -> torch.nn.Module:
        from transformers import AutoModelForSpeechSeq2Seq

        config, dtype = self.config, self.dtype()  # (a scratch config is made on the CPU, before going meta)
        with torch.device("meta"):
            return AutoModelForSpeechSeq2Seq.from_config(config, dtype=dtype, trust_remote_code=self.recipe.model.trust_remote_code)

    def tokenizer(self) -> Any | None:
        """The tokenizer the run would use, where it is on this machine (a scratch model's, a local folder's
        or the cache's); None otherwise."""
        if self.scratch:
            self.config  # noqa: B018 - builds the scratch processor
            return self.task.processor.tokenizer
        from transformers import WhisperTokenizer

        try:
            return WhisperTokenizer.from_pretrained(self.recipe.model.base, local_files_only=True, revision=self.recipe.model.revision)
        except (OSError, ValueError):
            return None

    def label_length(self, limit: int) -> int:
        """Tokens of the longest training transcript with its prefix and end tokens (what the collator pads a
        batch to), at most the decoder's ``limit``: counted with the tokenizer where it is here, else at a
        generous 3 characters a token. Without the data, the decoder's limit."""
        rows = self.splits.train if self.splits is not None else []
        if not rows:
            return limit
        longest = sorted((row["text"] for row in rows), key=len)[-LONGEST_COUNTED:]
        tokenizer = self.tokenizer()
        if tokenizer is not None:
            tokens = max(len(tokenizer(text).input_ids) for text in longest)
        else:
            tokens = -(-len(longest[-1]) // 3) + PREFIX_TOKENS + 1
        return max(1, min(limit, tokens))

    def forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        """A full window of log-mel features and labels as long as the longest transcript's (the decoder's
        ``max_target_positions`` when the data is not here)."""
        config = model.config
        features_dtype = next((p.dtype for n, p in model.named_parameters() if n.endswith("conv1.weight")), torch.float32)
        features = torch.zeros((batch_size, config.num_mel_bins, 2 * config.max_source_positions), dtype=features_dtype,
                               device="meta")
        labels = torch.zeros((batch_size, self.label_length(config.max_target_positions)), dtype=torch.long, device="meta")
        return model(input_features=features, labels=labels, use_cache=False).loss

    def labels_fit(self, rows: list[dict[str, Any]]) -> list[bool]:
        """Per row, whether its labels fit the decoder (``build_data`` skips the others): counted with the
        tokenizer where it is here (as :meth:`label_length` counts: a base's tokenizer with its own prefix,
        which may lack the language token the run adds); all True where the tokenizer or the config is not."""
        tokenizer = self.tokenizer() if rows else None
        try:
            limit = self.config.max_target_positions
        except RecipeRuntimeError:
            tokenizer = None
        if tokenizer is None:
            return [True] * len(rows)
        start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        ids = tokenizer([row["text"] for row in rows]).input_ids
        return [len(one) - (bool(one) and one[0] == start) <= limit for one in ids]

    def window(self) -> float:
        """Seconds of audio the model hears at once; ``build_data`` skips longer clips."""
        if self.scratch:
            return float(self.recipe.model.config.get("chunk_length", 5))  # _build_processor's default
        extractor = Path(self.recipe.model.base).expanduser() / "preprocessor_config.json"
        if extractor.is_file():
            return float(json.loads(extractor.read_text(encoding="utf-8")).get("chunk_length", WINDOW_SECONDS))
        try:
            return self.config.max_source_positions / POSITIONS_PER_SECOND
        except RecipeRuntimeError:
            return WINDOW_SECONDS

    def data(self) -> PlanData:
        splits = self.splits
        if splits is None:
            return PlanData(unavailable=self.unavailable, guidance=GUIDANCE)
        window, report = self.window(), splits.report
        train = [row for row in splits.train if row["duration"] <= window]
        evaluation = [row for row in splits.eval or [] if row["duration"] <= window]
        warnings = [w for w in report.warnings if not is_hours_warning(w)]
        too_long = len(splits.train) + len(splits.eval or []) - len(train) - len(evaluation)
        stop = " (data.on_error is fail: the run stops at the first)" if self.recipe.data.on_error == "fail" else ""
        if too_long:
            warnings.append(f"{too_long} clip(s) are longer than the model's {window:g} s window and are skipped{stop}")
        fits = self.labels_fit(train + evaluation)
        if not all(fits):
            split = len(train)
            train = [row for row, ok in zip(train, fits[:split]) if ok]
            evaluation = [row for row, ok in zip(evaluation, fits[split:]) if ok]
            warnings.append(f"{fits.count(False)} transcript(s) are longer than the decoder takes "
                            f"({self.config.max_target_positions} tokens) and are skipped{stop}")
        if report.skipped:
            where, why = next(iter(report.skipped.items()))
            warnings.append(f"{len(report.skipped)} clip(s) are skipped when read, e.g. {where}: {why}")
        overlap = None
        if self.recipe.data.eval is not None or self.recipe.data.format == "synthetic":
            seen = {clip_key(row) for row in train}
            overlap = sum(clip_key(row) in seen for row in evaluation)
        return PlanData(train_examples=len(train), eval_examples=len(evaluation),
                        amount={"audio_hours": sum(row["duration"] for row in train) / 3600.0},
                        mean_fill=1.0, overlap=overlap, guidance=GUIDANCE, warnings=warnings)
