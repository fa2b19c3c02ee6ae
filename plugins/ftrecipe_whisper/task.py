"""The Whisper task: audio -> log-mel features (augmented on the fly) -> seq2seq loss; WER/CER eval."""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from ftrecipe.plugin import DataBundle, EvalResult, EpochIndex, ModalityTask, RecipeRuntimeError, RunFailure, load_pretrained
from ftrecipe_whisper.audio import AudioError, load_audio, resample
from ftrecipe_whisper.augment import sample_seed
from ftrecipe_whisper.chain import AugmentedChain
from ftrecipe_whisper.groups import GroupTracker, card_lines, group_table
from ftrecipe_whisper.precision import HALF, stored_dtype, weight_dtype
from ftrecipe_whisper.synthetic import SyntheticClip

TINY_KEYS = ("d_model", "encoder_layers", "decoder_layers", "attention_heads", "ffn_dim", "chunk_length", "bpe_vocab_size")


class SpeechDataset(torch.utils.data.Dataset):
    """Rows -> (input_features, label ids); augmentation only where ``chain`` is given (training).

    A clip that passed the read-time checks but fails to decode (corrupt in the middle) is dropped
    from its batch with a warning when ``skip_bad``, else it stops the run naming the file.
    """

    epoch_aware = True  # indices carry their epoch: augmentation is seeded per (seed, epoch, index)

    def __init__(self, rows: list[dict], processor: Any, sample_rate: int, chain: AugmentedChain | None, seed: int,
                 skip_bad: bool = True) -> None:
        self.rows, self.processor, self.sample_rate, self.chain, self.seed = rows, processor, sample_rate, chain, seed
        self.skip_bad = skip_bad
        self._reported: set[str] = set()  # clips already warned about (in this process)

    def __len__(self) -> int:
        return len(self.rows)

    def wave(self, index: int, *, fired: list[str] | None = None) -> np.ndarray:
        """The clip training hears at ``index`` (an ``EpochIndex`` carries the epoch); ``fired`` collects the steps applied."""
        row = self.rows[int(index)]
        audio = row["audio"]
        if isinstance(audio, str):
            wave = load_audio(audio, self.sample_rate)
        else:
            wave = resample(audio.wave if isinstance(audio, SyntheticClip) else audio, row["sample_rate"], self.sample_rate)
        if self.chain is not None and len(self.chain):
            key = sample_seed(self.seed, getattr(index, "epoch", 0), int(index))
            wave, applied = self.chain.apply(wave, self.sample_rate, key)
            if fired is not None:
                fired.extend(applied)
        return wave

    def __getitem__(self, index: int) -> tuple[np.ndarray, list[int]] | None:
        try:
            wave = self.wave(index)
        except AudioError as error:
            if not self.skip_bad:
                raise RunFailure(f"{error} (data.on_error is 'fail'; 'skip' drops such clips)") from error
            if error.path not in self._reported:
                self._reported.add(error.path)
                print(f"warning: skipping {error}", file=sys.stderr)
            return None
        features = self.processor.feature_extractor(wave, sampling_rate=self.sample_rate).input_features[0]
        labels = self.processor.tokenizer(self.rows[int(index)]["text"]).input_ids
        return features, labels


class SpeechCollator:
    """Stacks features; pads labels with -100 and drops the start token the model prepends itself."""

    def __init__(self, decoder_start_token_id: int) -> None:
        self.start = decoder_start_token_id

    def __call__(self, items: list[tuple[np.ndarray, list[int]] | None]) -> dict[str, torch.Tensor]:
        items = [item for item in items if item is not None]  # clips that failed to decode
        if not items:
            raise RunFailure("no clip of a batch could be decoded; see the warnings above")
        features = torch.from_numpy(np.stack([f for f, _ in items])).float()
        label_lists = [ids[1:] if ids and ids[0] == self.start else ids for _, ids in items]
        length = max(len(ids) for ids in label_lists)
        labels = torch.full((len(items), length), -100, dtype=torch.long)
        for i, ids in enumerate(label_lists):
            labels[i, : len(ids)] = torch.tensor(ids)
        return {"input_features": features, "labels": labels}


class WhisperTask(ModalityTask):
    processor: Any = None
    _groups: GroupTracker | None = None
    """Per-group WER before and after (``data.group_by``), made at the first evaluation."""

    # -- model and processor -------------------------------------------------------------------
    def _from_config(self) -> bool:
        return self.ctx.smoke or self.recipe.model.init == "scratch"

    def _build_processor(self, transcripts: list[str]) -> None:
        from transformers import WhisperProcessor

        model = self.recipe.model
        if self._from_config():
            from ftrecipe_whisper.tiny import build_tiny_whisper

            # A tiny Whisper with a short window and a tokenizer trained on these transcripts.
            options = {k: v for k, v in model.config.items() if k in TINY_KEYS}
            unknown = sorted(set(model.config) - set(TINY_KEYS))
            if unknown:
                raise RecipeRuntimeError(("model", "config"), f"unknown tiny-Whisper options {unknown}; known: {', '.join(TINY_KEYS)}")
            self._scratch_dir = tempfile.TemporaryDirectory(prefix="ftrecipe-whisper-")
            build_tiny_whisper(transcripts, self._scratch_dir.name, language=model.language, task=model.task,
                               seed=self.ctx.seed, **{"chunk_length": 5, **options})
            source = self._scratch_dir.name
        else:
            source = model.base
        self.processor = load_pretrained(WhisperProcessor.from_pretrained, source, what="Whisper processor",
                                         revision=None if self._from_config() else model.revision)
        self.processor.tokenizer.set_prefix_tokens(language=model.language, task=model.task, predict_timestamps=model.timestamps)
        self.source = source
        from transformers import WhisperConfig

        self.config = load_pretrained(WhisperConfig.from_pretrained, source, what="Whisper config",
                                      revision=None if self._from_config() else model.revision)

    def build_model(self) -> torch.nn.Module:
        from transformers import WhisperForConditionalGeneration

        kwargs: dict[str, Any] = {"trust_remote_code": self.recipe.model.trust_remote_code}
        if not self._from_config():
            kwargs["revision"] = self.recipe.model.revision
            kwargs["dtype"] = weight_dtype(self.recipe)
            if self.saved_dtype() is not None:
                self.ctx.log(f"model.dtype auto: {self.recipe.model.base} is stored in {str(stored_dtype(self.config)).removeprefix('torch.')}; "
                             "training keeps float32 weights (mixed precision computes in half) and the saved model "
                             "is written in the checkpoint's dtype")
        model = load_pretrained(WhisperForConditionalGeneration.from_pretrained, self.source, **kwargs)
        model.generation_config.language = self.recipe.model.language
        model.generation_config.task = self.recipe.model.task
        model.generation_config.forced_decoder_ids = None
        return model

    def saved_dtype(self) -> torch.dtype | None:
        """The half dtype the saved model is cast back to: the checkpoint's own (float16 for whisper-large-v3)
        where ``model.dtype: auto`` trained it in float32; None where the weights stay as trained."""
        stored = stored_dtype(self.config)
        pretrained = not self._from_config() and self.recipe.model.dtype == "auto"
        return stored if pretrained and stored in HALF else None

    # -- planning (`ftrecipe plan`): the hooks live in ftrecipe_whisper.planning
    planner = "ftrecipe_whisper.planning:WhisperPlan"

    # -- data ----------------------------------------------------------------------------------
    def build_data(self) -> DataBundle:
        data, ctx = self.recipe.data, self.ctx
        splits = self.read_data()
        self._build_processor([row["text"] for row in splits.train])
        sample_rate = self.processor.feature_extractor.sampling_rate
        window = float(self.processor.feature_extractor.chunk_length)
        rows = {"train": list(splits.train), "eval": list(splits.eval or [])}
        report = splits.report
        for split, items in rows.items():  # the feature extractor would cut them silently
            for index, row in enumerate(items):
                if row["duration"] > window:
                    name = row["audio"] if isinstance(row["audio"], str) else f"{split}:{index}"
                    if data.on_error == "fail":
                        raise RecipeRuntimeError(("data", "max_seconds"), f"{name}: {row['duration']:.2f} s is longer than the model's {window:g} s window")
                    report.skip(name, f"too long: {row['duration']:.2f} s > {window:g} s model window")
            rows[split] = [row for row in items if row["duration"] <= window]
        report.details["transcripts_too_long"] = self._drop_long_transcripts(rows, report)
        report.train_examples, report.eval_examples = len(rows["train"]), len(rows["eval"])
        splits.train, splits.eval = rows["train"], rows["eval"] or None
        self.chain = AugmentedChain.from_recipe(self.recipe, ctx.registry, ctx.base_dir)
        skip = data.on_error == "skip"
        train = SpeechDataset(list(splits.train), self.processor, sample_rate, self.chain, ctx.seed, skip)
        evaluation = SpeechDataset(list(splits.eval or []), self.processor, sample_rate, None, ctx.seed, skip)
        if ctx.save_augmented and ctx.is_main_process:
            self._save_augmented(train, ctx.save_augmented)
        start = self.processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        report.details["augmentation"] = self.chain.describe()
        return DataBundle(train=train, eval=evaluation if len(evaluation) else None, collate=SpeechCollator(start),
                          report=report, files=splits.files)

    def _drop_long_transcripts(self, rows: dict[str, list[dict]], report: Any) -> int:
        """Leave out (or, with ``on_error: fail``, stop at) clips whose labels the decoder cannot take: more
        tokens than its ``max_target_positions`` (448 for Whisper) would fail the forward pass mid-run.
        Counted as the collator builds the labels: prefix, transcript and end token, less the start token."""
        data, limit, count = self.recipe.data, self.config.max_target_positions, 0
        start = self.processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        for split, items in rows.items():
            if not items:
                continue
            lengths = [len(ids) - (bool(ids) and ids[0] == start) for ids in self.processor.tokenizer([row["text"] for row in items]).input_ids]
            for index, (row, tokens) in enumerate(zip(items, lengths)):
                if tokens <= limit:
                    continue
                name = row["audio"] if isinstance(row["audio"], str) else f"{split}:{index}"
                why = f"transcript too long: {tokens} tokens > {limit} the decoder takes"
                if data.on_error == "fail":
                    key = "eval" if split == "eval" and data.eval is not None else "train"
                    raise RecipeRuntimeError(("data", key), f"{name}: {why} (data.on_error is 'fail'; 'skip' leaves such clips out)")
                report.skip(name, why)
                count += 1
            rows[split] = [row for row, tokens in zip(items, lengths) if tokens <= limit]
        return count

    def _save_augmented(self, dataset: SpeechDataset, n: int) -> None:
        """Write N augmented training clips, exactly as epoch 1 hears them, for people to listen to.

        ``augmented/`` is an audiofolder: ``metadata.csv`` has file_name, text and the steps that
        fired (``applied``); ``chain.txt`` holds the chain's description.
        """
        out = self.ctx.output_dir / "augmented"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "text", "applied"])
            for i in range(min(n, len(dataset))):
                name, fired = f"aug_{i:04d}.wav", []
                wave = dataset.wave(EpochIndex(i, 0), fired=fired)
                sf.write(out / name, np.clip(wave, -1, 1), dataset.sample_rate, subtype="PCM_16")
                writer.writerow([name, dataset.rows[i]["text"], "+".join(fired)])
        (out / "chain.txt").write_text(self.chain.describe() + "\n", encoding="utf-8")
        self.ctx.log(f"wrote {min(n, len(dataset))} augmented clips to {out}")

    def compute_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(input_features=batch["input_features"], labels=batch["labels"]).loss

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        import jiwer

        dataset: SpeechDataset = data.eval
        count = min(len(dataset), max_examples or len(dataset))
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        settings = self.recipe.evaluation.generation
        limit = max(1, model.config.max_target_positions - 8)
        if self.ctx.smoke:
            limit = min(limit, 16)
        predictions: list[str] = []
        total_loss = 0.0
        collate = data.collate
        kept: list[int] = []  # eval clips that decoded, in order
        for start in range(0, count, 16):
            items = {i: dataset[i] for i in range(start, min(count, start + 16))}
            items = {i: item for i, item in items.items() if item is not None}
            if not items:
                continue
            kept.extend(items)
            batch = collate(list(items.values()))
            features = batch["input_features"].to(device, dtype)
            total_loss += model(input_features=features, labels=batch["labels"].to(device)).loss.item() * len(features)
            generated = model.generate(
                input_features=features,
                language=self.recipe.model.language,
                task=self.recipe.model.task,
                return_timestamps=self.recipe.model.timestamps,
                max_new_tokens=min(settings.max_new_tokens, limit),
                num_beams=settings.num_beams,
            )
            predictions.extend(self.processor.batch_decode(generated, skip_special_tokens=True))
        if count and not kept:
            raise RunFailure("no evaluation clip could be decoded; see the warnings above")
        from ftrecipe_whisper.readers import _normalize

        predictions = [_normalize(self.recipe.data, p) for p in predictions]
        references = [dataset.rows[i]["text"] for i in kept]
        metrics = {"eval_loss": total_loss / max(1, len(kept))}
        for name in self.recipe.evaluation.metrics or []:
            metrics.update(self.metric(name, predictions, references))
        columns = getattr(self.recipe.data, "group_columns", [])
        report: dict[str, Any] = {}
        if columns and self.ctx.is_main_process:
            groups = self._report_groups([dataset.rows[i] for i in kept], references, predictions, columns)
            if groups is not None:
                report["groups"] = groups
        samples = [
            {"audio": dataset.rows[i]["audio"] if isinstance(dataset.rows[i]["audio"], str) else f"synthetic:{i}",
             "reference": ref, "prediction": pred, "wer": jiwer.wer(ref, pred) if ref else float(bool(pred)),
             **({"groups": dataset.rows[i]["groups"]} if columns else {})}
            for i, ref, pred in zip(kept, references, predictions)
        ]
        samples.sort(key=lambda s: -s["wer"])  # the worst transcriptions first
        return EvalResult(metrics, samples=samples[: self.recipe.evaluation.samples], report=report)

    def _report_groups(self, rows: list[dict], references: list[str], predictions: list[str],
                       columns: list[str]) -> dict[str, Any] | None:
        """WER and CER per ``data.group_by`` group, compared with the base model's: eval_groups.json and the
        console, where each group that got worse is flagged; returned for the evaluation's report (so the
        final one is summary.json's ``eval_report.groups``). None for the base model's own evaluation."""
        ctx = self.ctx
        if self._groups is None:
            self._groups = GroupTracker(ctx.output_dir, write=ctx.is_main_process, log=ctx.log, warn=ctx.warn)
        return self._groups.record(group_table(rows, references, predictions, columns), before=ctx.evaluation == "before")

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        """``save_pretrained`` model and processor: loads straight into pipeline('automatic-speech-recognition').

        A checkpoint stored in half precision and trained in float32 (``model.dtype: auto``) is saved in its
        own dtype again, as large as the base and loading as it did; an adapter keeps PEFT's float32."""
        from peft import PeftModel

        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(model, PeftModel) and self.recipe.output.save != "adapter":
            model = model.merge_and_unload()
        half = self.saved_dtype()
        if half is not None and not isinstance(model, PeftModel):
            import copy

            state = {name: tensor.to(half) if tensor.is_floating_point() else tensor for name, tensor in model.state_dict().items()}
            model.save_pretrained(directory, state_dict=state)
            config = copy.deepcopy(model.config)  # save_pretrained wrote the dtype of the model in memory
            config.dtype = half
            config.save_pretrained(directory)
        else:
            model.save_pretrained(directory)
        self.processor.save_pretrained(directory)

    def model_card_notes(self) -> list[str]:
        return [
            "## Use",
            "```python",
            "from transformers import pipeline",
            "asr = pipeline('automatic-speech-recognition', model='model')",
            "print(asr('call.wav')['text'])",
            "```",
            f"Augmentation during training: {self.chain.describe()}",
            *(card_lines(self._groups.latest) if self._groups is not None and self._groups.latest else []),
        ]

    def model_card_metadata(self) -> dict[str, Any]:
        adapter = self.recipe.output.save == "adapter" and self.recipe.freeze.strategy == "lora"
        metadata: dict[str, Any] = {"library_name": "peft" if adapter else "transformers",
                                    "pipeline_tag": "automatic-speech-recognition"}
        if self.recipe.model.language:
            metadata["language"] = [self.recipe.model.language]
        return metadata
