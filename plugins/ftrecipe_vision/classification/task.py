"""The image-classification task: pictures -> a torchvision classifier with the recipe's head -> cross-entropy,
on the common loop; accuracy, top-5, macro F1, per-class accuracy and a confusion matrix as evaluation; a
torchvision state dict, its rebuild snippet and an ONNX export as the saved model."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ftrecipe.plugin import (DataBundle, EpochIndex, EvalResult, ModalityTask, ModelAnatomy, RecipeRuntimeError,
                             peft_modules_to_save, where_of)
from ftrecipe_vision.classification import architecture as arch
from ftrecipe_vision.classification import choices
from ftrecipe_vision.classification.augment import AugmentChain
from ftrecipe_vision.classification.batchnorm import keep_frozen_statistics
from ftrecipe_vision.hardware import synchronise_batchnorm
from ftrecipe_vision.classification.dataset import ImageDataset, collate
from ftrecipe_vision.classification.metrics import confusion_matrix, confusion_picture, per_class_accuracy

EVAL_BATCH = 32
PER_CLASS_METRICS = 20
"""Classes up to which each one's accuracy is a metric of its own (``accuracy/<class>``); beyond, the
confusion matrix and the samples show them."""


class ImageClassificationTask(ModalityTask):
    planner = "ftrecipe_vision.classification.planning:ClassificationPlan"
    labels: list[str]
    frozen_batchnorms: list[str] = []
    onnx_difference: float | None = None

    @property
    def smoke(self) -> bool:
        return self.ctx.smoke

    # -- data ------------------------------------------------------------------------------------------------
    def _label_ids(self, rows: list[dict], report: Any, split: str) -> list[dict]:
        """Rows whose label is one of the head's; the others skipped into the report (or fatal with on_error: fail)."""
        known = set(self.labels)
        kept = []
        for i, row in enumerate(rows):
            if row["label"] in known:
                kept.append(row)
                continue
            problem = f"label {row['label']!r} is not one of the head's classes"
            key = ("head", "labels") if self.recipe.head.labels else ("head", "mode")
            if self.recipe.data.on_error == "fail" or self.recipe.head.mode == "keep":
                shown = ", ".join(self.labels[:10]) + (", ..." if len(self.labels) > 10 else "")
                raise RecipeRuntimeError(key, f"{where_of(row, f'{split} example {i}')}: {problem} ({shown})")
            report.skip(where_of(row, f"{split} example {i}"), problem)
        return kept

    def build_data(self) -> DataBundle:
        ctx, recipe = self.ctx, self.recipe
        splits = self.read_data()
        report = splits.report
        self.labels = choices.head_labels(recipe, report.details.get("classes"))
        train = self._label_ids(list(splits.train), report, "train")
        evaluation = self._label_ids(list(splits.eval or []), report, "eval")
        if not train:
            raise RecipeRuntimeError(("head", "labels"), "no training picture has one of the head's classes")
        missing = sorted(set(self.labels) - {row["label"] for row in train})
        if missing and recipe.head.mode != "keep":
            report.warnings.append(f"no training pictures for {', '.join(missing)}: the head learns nothing of them")
        report.train_examples, report.eval_examples = len(train), len(evaluation)
        self.example_row = (evaluation or train)[0]  # the ONNX export is checked on it
        self.prep = choices.preprocessing(recipe, self.smoke)
        if self.smoke and recipe.model.image_size != self.prep.size:
            ctx.log(f"--smoke: pictures at {self.prep.size} px instead of {recipe.model.image_size}")
        self.chain = AugmentChain.from_recipe(recipe, ctx.registry)
        label_ids = {name: i for i, name in enumerate(self.labels)}
        train_set = ImageDataset(train, label_ids, self.prep, ctx.seed, self.chain)
        eval_set = ImageDataset(evaluation, label_ids, self.prep, ctx.seed)
        report.details["labels"] = self.labels if len(self.labels) <= 50 else f"{len(self.labels)} classes"
        report.details["augmentation"] = self.chain.describe()
        report.details["preprocessing"] = self.prep.describe()
        if ctx.save_augmented and ctx.is_main_process:
            self._save_augmented(train_set, ctx.save_augmented)
        return DataBundle(train=train_set, eval=eval_set if len(eval_set) else None, collate=collate, report=report, files=splits.files)

    def _save_augmented(self, dataset: ImageDataset, count: int) -> None:
        """The first ``count`` training pictures as epoch 1 sees them (an imagefolder with a metadata.csv)."""
        folder = self.ctx.output_dir / "augmented"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file_name", "label", "applied"])
            for i in range(min(count, len(dataset))):
                fired: list[str] = []
                name = f"aug_{i:04d}.png"
                dataset.image(EpochIndex(i, 0), fired).save(folder / name)
                writer.writerow([name, dataset.rows[i]["label"], "+".join(fired)])
        self.ctx.log(f"wrote {min(count, len(dataset))} augmented pictures to {folder}")

    # -- the model -------------------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        recipe = self.recipe
        if choices.from_config(recipe, self.smoke):
            self.architecture = choices.architecture(recipe, self.labels, smoke=self.smoke)
            model = self._built(self.architecture.build)
            self.head_layer = self.head_name(model)
            return model
        from ftrecipe_vision.pretrained import load_weights

        state, _ = load_weights(recipe.model.weights_spec(), builder=recipe.model.base, base_dir=self.ctx.base_dir)
        plain = choices.architecture(recipe, self.labels, smoke=False, outputs=1)
        probe_head = arch.head_path(self._built(plain.body, device="meta"))
        if f"{probe_head}.weight" not in state:
            raise RecipeRuntimeError(("model", "weights"),
                                     f"these weights have no '{probe_head}.weight': they are not {recipe.model.base}'s")
        outputs = int(state[f"{probe_head}.weight"].shape[0])
        self.head_layer = probe_head
        self.architecture = choices.architecture(recipe, self.labels, smoke=False, outputs=outputs)
        model = self._built(arch.Architecture(plain.builder, outputs, plain.kwargs, plain.blocks).body)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            first = str(error).splitlines()[0]
            raise RecipeRuntimeError(("model", "weights"), f"the weights do not fit {recipe.model.base}: {first}") from error
        mode = recipe.head.mode
        if mode == "replace":
            arch.replace_head(model, len(self.labels))
        elif mode == "append":
            arch.attach_appended(model, probe_head, len(self.labels))
        elif outputs != len(self.labels):
            raise RecipeRuntimeError(("head", "mode"), f"the weights' head has {outputs} outputs, their entry {len(self.labels)} classes")
        return model

    def _built(self, make: Any, device: str | None = None) -> nn.Module:
        try:
            if device is None:
                return make()
            with torch.device(device):
                return make()
        except TypeError as error:  # an unknown builder keyword from model.config
            raise RecipeRuntimeError(("model", "config"), f"{self.recipe.model.base}: {error}") from error

    def head_name(self, model: nn.Module) -> str:
        path = arch.head_path(model)
        return path.rsplit(".", 1)[0] if self.recipe.head.mode == "append" else path

    def anatomy(self, model: nn.Module) -> ModelAnatomy:
        found = arch.anatomy(model, self.head_name(model))
        found.add_adapters = self.add_adapters
        return found

    def add_adapters(self, model: nn.Module, config: Any) -> nn.Module:
        """PEFT's LoRA on the convolutions and linear layers: ``all-linear`` means every Conv2d (ungrouped) and
        Linear outside the head and what trains in full: a new head and the modules of `freeze.train` train in full
        beside the adapters and are saved with them; a kept head stays as trained."""
        from peft import get_peft_model

        in_full = list(config.modules_to_save or ())  # a new head (the anatomy's) and freeze.train's modules
        no_adapter = [self.head_name(model), *in_full]  # a kept head stays as trained

        def adapted(name: str) -> bool:
            return not any(name == kept or name.startswith(kept + ".") for kept in no_adapter)

        if config.target_modules == "all-linear":
            config.target_modules = [name for name, module in model.named_modules()
                                     if (isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1))
                                     and adapted(name)]
        config.modules_to_save = peft_modules_to_save(model, in_full)
        return get_peft_model(model, config)

    def apply_speedups(self, model: nn.Module) -> dict[str, Any]:
        """Not a speed switch: after the freeze plan, ``hardware.sync_batchnorm`` converts the BatchNorm layers,
        and the frozen part's keep their statistics (evaluation mode while training), said in the run log and
        on the model card."""
        synchronise_batchnorm(model, self.ctx)
        self.frozen_batchnorms = keep_frozen_statistics(model)
        if self.frozen_batchnorms:
            self.ctx.log(f"freeze plan: the BatchNorm statistics of the frozen layers stay as trained "
                         f"({len(self.frozen_batchnorms)} BatchNorm layers run in evaluation mode)")
        return {}

    def compute_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(arch.logits_of(model(batch["pixel_values"])), batch["labels"])

    # -- evaluation ------------------------------------------------------------------------------------------
    def evaluate(self, model: nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        dataset: ImageDataset = data.eval
        count = min(len(dataset), max_examples or len(dataset))
        device = next(model.parameters()).device
        logits = []
        for start in range(0, count, EVAL_BATCH):
            batch = collate([dataset[i] for i in range(start, min(count, start + EVAL_BATCH))])
            logits.append(arch.logits_of(model(batch["pixel_values"].to(device))).float().cpu())
        scores = torch.cat(logits)
        references = torch.tensor([dataset.label_ids[dataset.rows[i]["label"]] for i in range(count)])
        predictions = scores.argmax(-1)
        metrics = {"eval_loss": F.cross_entropy(scores, references).item()}
        for name in self.recipe.evaluation.metrics or []:
            if name == "top5_accuracy":
                if len(self.labels) > 5:
                    metrics.update(self.metric(name, scores.topk(5, dim=-1).indices.tolist(), references.tolist()))
                continue
            metrics.update(self.metric(name, predictions.tolist(), references.tolist()))
        matrix = confusion_matrix(predictions.tolist(), references.tolist(), len(self.labels))
        if len(self.labels) <= PER_CLASS_METRICS:
            metrics.update({f"accuracy/{name}": value for name, value in per_class_accuracy(matrix, self.labels).items()})
        shown = [i for i in range(len(self.labels)) if matrix[i].sum() or matrix[:, i].sum()]
        title = f"confusion matrix: {count} evaluation pictures"
        picture = confusion_picture(matrix[shown][:, shown], [self.labels[i] for i in shown], title)
        return EvalResult(metrics, samples=self._mistakes(dataset, scores, references), images={"confusion_matrix": picture})

    def _mistakes(self, dataset: ImageDataset, scores: torch.Tensor, references: torch.Tensor) -> list[dict[str, Any]]:
        """The misclassified pictures, the most confidently wrong first."""
        probabilities = scores.softmax(-1)
        confidence, predictions = probabilities.max(-1)
        wrong = [i for i in range(len(references)) if predictions[i] != references[i]]
        wrong.sort(key=lambda i: -confidence[i].item())
        rows = dataset.rows
        return [{"image": where_of(rows[i], str(rows[i]["image"]) if isinstance(rows[i]["image"], str) else f"eval:{i}"),
                 "label": rows[i]["label"], "predicted": self.labels[int(predictions[i])],
                 "confidence": round(confidence[i].item(), 4)} for i in wrong[: self.recipe.evaluation.samples]]

    # -- saving ----------------------------------------------------------------------------------------------
    def save(self, model: nn.Module, directory: Path) -> None:
        from ftrecipe_vision.classification.export import save_classifier

        self.onnx_difference = save_classifier(self, model, directory)

    def model_card_notes(self) -> list[str]:
        from ftrecipe_vision.classification.export import card_notes

        return card_notes(self)

    def model_card_metadata(self) -> dict[str, Any]:
        return {"library_name": "pytorch", "pipeline_tag": "image-classification", "tags": ["torchvision", self.recipe.model.base],
                "base_model": None}  # model.base is a torchvision builder, not a Hub repository
