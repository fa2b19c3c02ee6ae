"""The causal-LM task: supervised fine-tuning with completion-only loss, packing and generation eval."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ftrecipe.plugin import DataBundle, DataReport, EvalResult, ModalityTask, ModelAnatomy, RecipeRuntimeError, where_of
from ftrecipe_text.formatting import render_example
from ftrecipe_text.loading import builds_from_config, from_config, from_pretrained, load_tokenizer
from ftrecipe_text.packing import check_packable, compare_padding, flattened_collate, pack_examples, packed_collate
from ftrecipe_text.speed import (
    apply_switches,
    check_switches,
    resolve_speed,
    smoke_switches,
    speed_settings,
    target_device,
)
from ftrecipe_text.records import FormatError
from ftrecipe_text.tokenization import IGNORE_INDEX, TokenizedExample, pad_collate, tokenize_examples

NORMALIZERS = {"exact_match": "strip", "exact_match_sql": "sql"}


class PackedCollator:
    """Packed rows -> model inputs whose position ids separate the examples (picklable for workers);
    ``flatten``: the rows end to end in one, for FlashAttention's variable-length kernel."""

    def __init__(self, pad_id: int, flatten: bool = False) -> None:
        self.pad_id, self.flatten = pad_id, flatten

    def __call__(self, rows: list) -> dict[str, Any]:
        inputs = flattened_collate(rows) if self.flatten else packed_collate(rows, self.pad_id)
        return {"inputs": inputs, "examples": sum(len(r.lengths) for r in rows), "tokens": sum(len(r) for r in rows)}


class PaddedCollator:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: list[TokenizedExample]) -> dict[str, Any]:
        inputs = pad_collate(examples, self.pad_id)
        return {"inputs": inputs, "examples": len(examples), "tokens": sum(len(e) for e in examples)}


class CausalLMTask(ModalityTask):
    """Builds a causal LM, its prompt/completion data, and exact-match evaluation."""

    tokenizer: Any = None
    packing = False  # set by build_data: training rows are packed

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.speed_chosen = resolve_speed(self.recipe, target_device(self.recipe, ctx.device))
        if ctx.smoke:  # a smoke run checks the pipeline on this machine: without what it cannot run
            smoke_switches(self.recipe, ctx.device, ctx.log)
        check_switches(self.recipe, ctx.device)  # before the data is read and the model loaded
        self.harness: Any = None
        settings = getattr(self.recipe.evaluation, "lm_eval", None)
        if settings is not None and ctx.device is not None:  # a run (plan asks without a device): tasks checked now
            from ftrecipe_text.harness import Harness, Report

            self.harness = Harness(settings, base_dir=ctx.base_dir, smoke=ctx.smoke, seed=ctx.seed)
            self.harness_report = Report(ctx.output_dir, write=ctx.is_main_process)

    # -- data ----------------------------------------------------------------------------------
    def _render(self, rows: list, report: DataReport, split: str) -> list[tuple[str, str, Any]]:
        data = self.recipe.data
        rendered = []
        for index, row in enumerate(rows):
            try:
                prompt, completion = render_example(
                    row, form=data.form, columns=data.columns, template=data.template,
                    tokenizer=self.tokenizer if data.form == "chat" else None, row_index=index,
                )
            except FormatError as error:
                where = where_of(row, f"{split} example {index}")  # the file and line it came from
                if data.on_error == "fail":
                    raise RecipeRuntimeError(("data", "columns"), f"{where}: {error.message}") from error
                report.skip(where, error.message)
                continue
            except ValueError as error:
                raise RecipeRuntimeError(("data", "form"), str(error)) from error
            rendered.append((prompt, completion, row))
        return rendered

    def build_data(self) -> DataBundle:
        data, ctx = self.recipe.data, self.ctx
        splits = self.read_data()
        report = splits.report
        if data.form == "chat" or not builds_from_config(self.recipe, ctx.smoke):
            self.tokenizer = load_tokenizer(self.recipe, [], ctx.smoke)
        train = self._render(list(splits.train), report, "train")
        evaluation = self._render(list(splits.eval or []), report, "eval")
        if splits.train and not train:
            first = next((f"{where}: {why}" for where, why in report.skipped.items()), "")
            raise RecipeRuntimeError(("data", "columns"), f"no training example could be read: {first}")
        if self.tokenizer is None:  # from scratch: a tokenizer trained on the training texts
            self.tokenizer = load_tokenizer(self.recipe, [p + c for p, c, _ in train], ctx.smoke)
        tokenized = tokenize_examples(self.tokenizer, [(p, c) for p, c, _ in train], data.max_length)
        self.eval_pairs = evaluation
        self.eval_examples = tokenize_examples(self.tokenizer, [(p, c) for p, c, _ in evaluation], data.max_length).examples
        examples = [e for e in tokenized.examples if e.num_loss_tokens > 0]
        pad_id = self.tokenizer.pad_token_id
        batch = self.recipe.training.batch_size
        padded, packed = compare_padding(examples, batch_size=batch, seq_len=data.max_length) if examples else (None, None)
        self.packing = bool(data.packing and examples)
        if self.packing:
            train_set: Any = pack_examples(examples, data.max_length)
            collate: Any = PackedCollator(pad_id, flatten=self.recipe.model.attn_implementation == "flash_attention_2")
            waste = packed.padding_fraction
        else:
            train_set, collate = examples, PaddedCollator(pad_id)
            waste = padded.padding_fraction if padded else 0.0
        report.train_examples, report.eval_examples = len(examples), len(evaluation)
        if self.harness is not None and not evaluation:
            raise RecipeRuntimeError(("evaluation", "lm_eval"), "the lm-eval tasks run with the evaluation, and this run has "
                                                                "no evaluation examples (data.eval, data.eval_fraction)")
        report.details.update({
            "truncated": tokenized.num_truncated,
            "completion_truncated": tokenized.num_completion_truncated,
            "packing": bool(data.packing),
            "sequences": len(train_set),
            "padding_fraction": round(waste, 4),
        })
        if padded is not None and data.packing:
            report.details["padding_fraction_unpacked"] = round(padded.padding_fraction, 4)
        return DataBundle(
            train=train_set,
            eval=self.eval_examples or None,
            collate=collate,
            report=report,
            files=splits.files,
        )

    # -- model ---------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        if builds_from_config(self.recipe, self.ctx.smoke):
            model = from_config(self.recipe, self.tokenizer, AutoModelForCausalLM)
        else:
            model = from_pretrained(self.recipe, AutoModelForCausalLM)
            if len(self.tokenizer) > model.get_input_embeddings().num_embeddings:
                model.resize_token_embeddings(len(self.tokenizer))
        if self.packing:
            check_packable(model)
        return model

    def anatomy(self, model: torch.nn.Module) -> ModelAnatomy:
        anatomy = super().anatomy(model)
        anatomy.peft_task_type = "CAUSAL_LM"
        return anatomy

    def apply_speedups(self, model: torch.nn.Module) -> dict[str, Any]:
        switches = apply_switches(model, self.recipe)
        auto = speed_settings(self.recipe, self.speed_chosen).get("speed")
        return {"speed": auto, **switches} if auto else switches

    def speed_settings(self) -> dict[str, Any]:
        return speed_settings(self.recipe, self.speed_chosen)

    def batch_counts(self, batch: dict[str, Any]) -> tuple[int, int]:
        return int(batch["examples"]), int(batch["tokens"])

    def compute_loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return model(**batch["inputs"]).loss

    # -- planning (`ftrecipe plan`): the hooks live in ftrecipe_text.planning
    planner = "ftrecipe_text.planning:CausalLMPlan"

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        device = next(model.parameters()).device
        limit = max_examples or len(self.eval_examples)
        examples = self.eval_examples[:limit]
        total_loss, total_tokens = 0.0, 0
        collate = PaddedCollator(self.tokenizer.pad_token_id)
        for start in range(0, len(examples), 16):
            chunk = examples[start : start + 16]
            inputs = {k: v.to(device) for k, v in collate(chunk)["inputs"].items()}
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.float()
            labels = inputs["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
            )
            total_loss += losses.item()
            total_tokens += int((labels != IGNORE_INDEX).sum())
        metrics: dict[str, float] = {}
        if total_tokens:
            metrics["eval_loss"] = total_loss / total_tokens
            metrics["perplexity"] = math.exp(min(metrics["eval_loss"], 50.0))
        report: dict[str, Any] = {}
        if self.harness is not None and self.ctx.evaluation != "periodic":  # costly: the base and final models only
            harness_metrics, report["lm_eval"] = self.harness_scores(model)
            metrics.update(harness_metrics)
        wanted = [m for m in self.recipe.evaluation.metrics or [] if m in NORMALIZERS]
        if not wanted:
            return EvalResult(metrics, report=report)
        pairs = self.eval_pairs[:limit]
        predictions = self.generate(model, [p for p, _, _ in pairs])
        references = [c for _, c, _ in pairs]
        # sql-eval accepts several gold queries per question; any of them is a match
        accepted = [row.get("gold_queries") or [c] if isinstance(row, dict) else [c] for _, c, row in pairs]
        for name in wanted:
            golds = accepted if name == "exact_match_sql" else references
            metrics[name] = self.metric(name, predictions, golds, normalizer=NORMALIZERS[name])["exact_match"]
        samples = [
            {"prompt": p, "reference": r, "prediction": g, "match": g.strip() == r.strip()}
            for (p, _, _), r, g in zip(pairs, references, predictions)
        ]
        samples.sort(key=lambda s: s["match"])  # misses first: they are what people need to read
        return EvalResult(metrics, samples=samples[: self.recipe.evaluation.samples], report=report)

    def harness_scores(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, Any]]:
        """The lm-eval tasks' main metrics, and per task its score before and after training and the
        change (the evaluation's ``report["lm_eval"]``); a warning for each task that got worse. The
        runner says which evaluation this is: the one ``before`` training is the base model's."""
        from ftrecipe_text.harness import LOG_FILE

        ctx = self.ctx
        log = ctx.output_dir.resolve() / LOG_FILE if ctx.is_main_process and ctx.output_dir.is_dir() else None
        scores = self.harness.evaluate(model, self.tokenizer, log)
        metrics, report, worse = self.harness_report.record(scores, is_before=ctx.evaluation == "before")
        for line in worse:
            ctx.warn(line)
        return metrics, report

    def generate(self, model: torch.nn.Module, prompts: list[str], batch_size: int = 16) -> list[str]:
        """Greedy (or beam) completions of ``prompts``, batched with left padding."""
        settings = self.recipe.evaluation.generation
        max_new_tokens = min(settings.max_new_tokens, 16) if self.ctx.smoke else settings.max_new_tokens
        device = next(model.parameters()).device
        tokenizer = self.tokenizer
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"
        outputs: list[str] = []
        try:
            for start in range(0, len(prompts), batch_size):
                encoded = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(device)
                generated = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    num_beams=settings.num_beams,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
                new_tokens = generated[:, encoded["input_ids"].shape[1] :]
                outputs.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        finally:
            tokenizer.padding_side = side
        return outputs

    # -- saving --------------------------------------------------------------------------------
    def save(self, model: torch.nn.Module, directory: Path) -> None:
        from ftrecipe_text.saving import save_text_model

        save_text_model(model, self.tokenizer, self.recipe, directory, smoke=self.ctx.smoke)

    def model_card_metadata(self) -> dict[str, Any]:
        from ftrecipe_text.saving import card_metadata

        return card_metadata(self.recipe, "text-generation", self.ctx.base_dir)

    def model_card_notes(self) -> list[str]:
        return [
            "## Use",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "tokenizer = AutoTokenizer.from_pretrained('model')",
            "model = AutoModelForCausalLM.from_pretrained('model')  # adapters: peft.AutoPeftModelForCausalLM",
            "```",
        ]
