"""The text-classification task: a pre-trained body with the recipe's classifier head (transfer learning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ftrecipe.plugin import DataBundle, DataReport, EvalResult, ModalityTask, ModelAnatomy, RecipeRuntimeError, where_of
from ftrecipe_text.loading import builds_from_config, from_config, from_pretrained, load_tokenizer

class EncodedCollator:
    """Pads token ids; labels travel as a tensor (picklable for DataLoader workers)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[tuple[list[int], int]]) -> dict[str, Any]:
        length = max(len(ids) for ids, _ in items)
        input_ids = torch.full((len(items), length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), length), dtype=torch.long)
        for i, (ids, _) in enumerate(items):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention_mask[i, : len(ids)] = 1
        labels = torch.tensor([label for _, label in items], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class ClassificationTask(ModalityTask):
    tokenizer: Any = None

    def _labels(self, rows: list[dict]) -> list[str]:
        if self.recipe.head.labels:
            return list(self.recipe.head.labels)
        column = self.recipe.data.columns.get("label", "label")
        found = sorted({str(row.get(column)) for row in rows})
        if self.recipe.head.num_labels and len(found) != self.recipe.head.num_labels:
            raise RecipeRuntimeError(("head", "num_labels"), f"the data has {len(found)} labels: {', '.join(found)}")
        return found

    def _encode(self, rows: list[dict], report: DataReport, split: str) -> list[tuple[list[int], int]]:
        data = self.recipe.data
        text_column, label_column = data.columns.get("text", "text"), data.columns.get("label", "label")
        index_of = {name: i for i, name in enumerate(self.labels)}
        encoded = []
        for i, row in enumerate(rows):
            text, label = row.get(text_column), row.get(label_column)
            label = str(label) if label is not None else None
            if not isinstance(text, str) or not text.strip() or label not in index_of:
                if not isinstance(text, str) or not text.strip():
                    problem, key = f"no text in column '{text_column}'", ("data", "columns")
                else:
                    problem, key = f"unknown label {label!r} (labels: {', '.join(self.labels)})", ("head", "labels")
                where = where_of(row, f"{split} example {i}")
                if data.on_error == "fail":
                    raise RecipeRuntimeError(key if self.recipe.head.labels else ("data", "columns"), f"{where}: {problem}")
                report.skip(where, problem)
                continue
            ids = self.tokenizer(text, truncation=True, max_length=data.max_length)["input_ids"]
            encoded.append((ids, index_of[label]))
        return encoded

    def build_data(self) -> DataBundle:
        data, ctx = self.recipe.data, self.ctx
        splits = self.read_data()
        train_rows, eval_rows = list(splits.train), list(splits.eval or [])
        self.labels = self._labels(train_rows)
        text_column = data.columns.get("text", "text")
        self.tokenizer = load_tokenizer(self.recipe, [str(r.get(text_column, "")) for r in train_rows], ctx.smoke, vocab_size=256)
        report = splits.report
        train = self._encode(train_rows, report, "train")
        evaluation = self._encode(eval_rows, report, "eval")
        if train_rows and not train:
            first = next(f"{where}: {why}" for where, why in report.skipped.items())
            raise RecipeRuntimeError(("data", "columns"), f"no training example could be read: {first}")
        report.train_examples, report.eval_examples = len(train), len(evaluation)
        report.details["labels"] = self.labels
        collate = EncodedCollator(self.tokenizer.pad_token_id)
        return DataBundle(train=train, eval=evaluation or None, collate=collate, report=report, files=splits.files)

    def build_model(self) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification

        labels = {"num_labels": len(self.labels), "id2label": dict(enumerate(self.labels)), "label2id": {n: i for i, n in enumerate(self.labels)}}
        if builds_from_config(self.recipe, self.ctx.smoke):
            return from_config(self.recipe, self.tokenizer, AutoModelForSequenceClassification, **labels)
        # replace: a fresh head for the new label set, even if the checkpoint had one of another size
        return from_pretrained(self.recipe, AutoModelForSequenceClassification, ignore_mismatched_sizes=True, **labels)

    def anatomy(self, model: torch.nn.Module) -> ModelAnatomy:
        anatomy = super().anatomy(model)
        anatomy.head = [n for n in anatomy.head if n.split(".")[-1] in ("classifier", "score")] or anatomy.head
        anatomy.peft_task_type = "SEQ_CLS"
        return anatomy

    def compute_loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return model(**batch).loss

    # -- planning (`ftrecipe plan`): the hooks live in ftrecipe_text.planning
    planner = "ftrecipe_text.planning:ClassificationPlan"

    def evaluate(self, model: torch.nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        device = next(model.parameters()).device
        examples = data.eval[: max_examples or len(data.eval)]
        predictions: list[int] = []
        total_loss = 0.0
        for start in range(0, len(examples), 32):
            batch = {k: v.to(device) for k, v in data.collate(examples[start : start + 32]).items()}
            output = model(**batch)
            total_loss += output.loss.item() * len(batch["labels"])
            predictions.extend(output.logits.argmax(-1).tolist())
        references = [label for _, label in examples]
        metrics = {"eval_loss": total_loss / max(1, len(examples))}
        for name in self.recipe.evaluation.metrics or []:
            metrics.update(self.metric(name, predictions, references, **({"average": "macro"} if name == "f1" else {})))
        samples = [
            {"text": self.tokenizer.decode(ids, skip_special_tokens=True), "label": self.labels[ref], "predicted": self.labels[pred]}
            for (ids, ref), pred in zip(examples, predictions)
            if ref != pred
        ]
        return EvalResult(metrics, samples=samples[: self.recipe.evaluation.samples])

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        from ftrecipe_text.saving import save_text_model

        save_text_model(model, self.tokenizer, self.recipe, directory, smoke=self.ctx.smoke)

    def model_card_metadata(self) -> dict[str, Any]:
        from ftrecipe_text.saving import card_metadata

        return card_metadata(self.recipe, "text-classification", self.ctx.base_dir)
