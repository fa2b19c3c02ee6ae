"""The YOLO task: the recipe turned into an Ultralytics training run that reports to ftrecipe.

The task checks and stages the data (``datasets``, ``staging``), resolves the model, head, freeze plan,
augmentation and hyperparameters into Ultralytics' arguments (shown in the run log), and hands the
loop to Ultralytics' own trainer through :mod:`ftrecipe_yolo.bridge`.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from ftrecipe.plugin import (
    DataBundle,
    EvalResult,
    FitResult,
    FreezeReport,
    ModalityTask,
    RecipeRuntimeError,
    RunFailure,
    TrainSession,
)
from ftrecipe_yolo import augment
from ftrecipe_yolo.offline import no_amp_download, ultralytics
from ftrecipe_yolo.sections import SMOKE_IMAGE_SIZE, missing_weights


class YoloTask(ModalityTask):
    owns_loop = True
    launches_processes = True  # one process: Ultralytics would start its own for several GPUs

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        ultralytics()  # a missing extra is a clear error before any data is read
        recipe = self.recipe
        self.augmentation = augment.hyperparameters(recipe.data.augment, ctx.registry, recipe.model.modality)
        self.trainer: Any = None
        self.freeze_report: FreezeReport | None = None

    # -- data ----------------------------------------------------------------------------------------
    def build_data(self) -> DataBundle:
        splits = self.read_data()
        if not splits.eval:
            raise RecipeRuntimeError(("data", "eval_fraction"), "a detector is validated after every epoch: give a val split "
                                     "or an eval_fraction above 0")
        names = splits.report.details["classes"]
        self.classes = self._head_classes(names)
        if self.classes != list(names):
            splits.report.details["head_classes"] = list(self.classes)
        return DataBundle(train=list(splits.train), eval=list(splits.eval), collate=None, report=splits.report, files=splits.files)

    def _head_classes(self, names: list[str]) -> list[str]:
        head = self.recipe.head
        if head.mode == "replace" and head.labels:
            unknown = [label for label in head.labels if label not in names]
            if unknown:
                raise RecipeRuntimeError(("head", "labels"), f"not classes of the dataset: {', '.join(unknown)} "
                                         f"(it has {', '.join(names[:12])}{', ...' if len(names) > 12 else ''})")
            return list(head.labels)
        return list(names)

    def stage(self, data: DataBundle) -> Path:
        from ftrecipe_yolo.staging import stage

        return stage({"train": data.train, "eval": data.eval}, self.classes, self.ctx.output_dir / "data")

    # -- the model -------------------------------------------------------------------------------------
    def model_source(self) -> tuple[str, bool]:
        """(what Ultralytics builds from: a .pt path or a model YAML, whether pre-trained weights load)."""
        base, key = self.recipe.model.base, ("model", "base")
        scratch = self.ctx.smoke or self.recipe.model.init == "scratch"
        local = (self.ctx.base_dir / Path(base).expanduser()).resolve()
        if base.endswith((".yaml", ".yml")):
            return (str(local) if local.is_file() else base), False  # a file, or one of Ultralytics' own YAMLs
        if not base.endswith(".pt"):
            raise RecipeRuntimeError(key, f"'{base}' is neither Ultralytics weights (.pt) nor a model YAML")
        if local.is_file():
            return str(local), not scratch
        if scratch:  # --smoke / init: scratch without the weights: the same architecture from its YAML
            return Path(base).with_suffix(".yaml").name, False
        raise RecipeRuntimeError(key, missing_weights(base))

    def build_model(self) -> Any:
        """The detector the recipe describes, with a head for the data's classes (pre-trained weights loaded)."""
        from ultralytics.nn.tasks import DetectionModel, load_checkpoint

        source, pretrained = self.model_source()
        model = DetectionModel(self._cfg(source), nc=len(self.classes), verbose=False)
        if pretrained:
            model.load(load_checkpoint(source)[0], verbose=False)
        return model

    def arguments(self, data_yaml: Path, session: TrainSession, per_epoch: int) -> dict[str, Any]:
        """Ultralytics' training arguments for this recipe."""
        recipe, training, hardware = self.recipe, self.recipe.training, self.recipe.hardware
        source, pretrained = self.model_source()
        image_size = min(recipe.model.image_size, SMOKE_IMAGE_SIZE) if self.ctx.smoke else recipe.model.image_size
        epochs = math.ceil(session.total_steps / per_epoch)
        cuda = str(session.device).startswith("cuda")
        precision = hardware.precision if hardware.precision != "auto" else ("fp16-mixed" if cuda else "fp32")
        amp = {"fp32": False, "bf16-mixed": "bf16", "fp16-mixed": True}[precision]
        workers = hardware.dataloader_workers if hardware.dataloader_workers is not None else 0
        return {
            "model": source, "pretrained": pretrained, "data": str(data_yaml), "epochs": epochs,
            "batch": training.batch_size, "imgsz": image_size, "device": "0" if cuda else "cpu", "workers": workers,
            "optimizer": {"adamw": "AdamW", "sgd": "SGD"}[training.optimizer], "lr0": training.learning_rate,
            "lrf": training.final_lr_fraction, "weight_decay": training.weight_decay, "warmup_epochs": training.warmup_epochs,
            "cos_lr": training.scheduler == "cosine", "close_mosaic": training.close_mosaic,
            "nbs": max(training.nominal_batch, 1), "seed": training.seed, "deterministic": True, "amp": amp,
            "project": str(self.ctx.output_dir), "name": "ultralytics", "exist_ok": True, "plots": False, "val": True,
            "verbose": False, "save": True, "patience": 10**6, **self.augmentation,
        }

    def after_setup(self, trainer: Any) -> None:
        """Called once Ultralytics has built and frozen the model: what transferred, and what trains."""
        transfer = getattr(trainer, "transfer", None)
        if transfer is not None and self.recipe.head.mode == "replace":
            if transfer.missing_backbone:
                raise RunFailure(f"the backbone did not transfer from {self.recipe.model.base}: {len(transfer.missing_backbone)} "
                                 f"tensors missing or of another shape (e.g. {transfer.missing_backbone[0]}); is it the same architecture?")
            self.ctx.log(f"head replaced for {len(self.classes)} classes: {transfer.transferred} of {transfer.total} tensors "
                         "transferred from the weights")
        elif transfer is not None and transfer.transferred < transfer.total:
            raise RecipeRuntimeError(("head", "mode"), f"the weights detect other classes than the dataset's {len(self.classes)}: "
                                     f"only {transfer.transferred} of {transfer.total} tensors fit; use head.mode: replace")
        model = trainer.model
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        self.freeze_report = FreezeReport(self.recipe.freeze.strategy, trainable, total, self.frozen_blocks)
        self.ctx.log(f"freeze plan {self.freeze_report.describe()}")

    # -- training --------------------------------------------------------------------------------------
    def fit(self, session: TrainSession) -> FitResult:
        from ftrecipe_yolo.bridge import SessionBridge, StopRequested, detection_metrics, trainer_class
        from ftrecipe_yolo.layers import freeze_list

        data_yaml = self.stage(session.data)
        per_epoch = session.steps_per_epoch
        arguments = self.arguments(data_yaml, session, per_epoch)
        resume = session.resume_from()
        if resume is not None and resume.step >= session.total_steps:
            key = ("training", "max_steps") if self.recipe.training.max_steps else ("training", "epochs")
            raise RecipeRuntimeError(key, f"the run is complete at step {resume.step} of {session.total_steps}: "
                                     f"raise {'.'.join(key)} to train it further")
        freeze, self.frozen_blocks = freeze_list(self.recipe, self._architecture(arguments["model"]))
        arguments["freeze"] = freeze or None
        trainer = trainer_class()(overrides=arguments)
        self.trainer = trainer
        self.ctx.log(f"Ultralytics: {self.describe(arguments)}")
        self.ctx.log(f"augmentation: {augment.describe(self.augmentation)}")
        bridge = SessionBridge(self, session, resume=resume, steps_per_epoch=per_epoch)
        bridge.attach(trainer)
        try:
            with no_amp_download():
                trainer.train()
        except StopRequested:
            return FitResult(model=None, steps=bridge.step, epochs=bridge.step // per_epoch, freeze_report=self.freeze_report)
        if session.is_main_process:
            session.evaluation("after", bridge.step, EvalResult(detection_metrics(trainer.metrics)))
        images = bridge.step * self.recipe.training.batch_size
        return FitResult(model=trainer.ema.ema, steps=bridge.step,
                         epochs=bridge.step // per_epoch, samples=images, freeze_report=self.freeze_report)

    def _architecture(self, source: str) -> Any:
        """The model's rows (for the freeze plan), built without weights."""
        from ultralytics.nn.tasks import DetectionModel

        return DetectionModel(self._cfg(source), nc=len(self.classes), verbose=False)

    def _cfg(self, source: str) -> Any:
        if source.endswith(".pt"):
            from ultralytics.nn.tasks import load_checkpoint

            return load_checkpoint(source)[0].yaml
        return source

    @staticmethod
    def describe(arguments: dict[str, Any]) -> str:
        shown = ("model", "pretrained", "epochs", "batch", "imgsz", "device", "optimizer", "lr0", "lrf", "weight_decay",
                 "warmup_epochs", "cos_lr", "nbs", "close_mosaic", "amp", "freeze")
        return ", ".join(f"{k}={arguments.get(k)}" for k in shown if k in arguments)

    # -- planning (`ftrecipe plan`): the hooks live in ftrecipe_yolo.planning
    planner = "ftrecipe_yolo.planning:YoloPlan"

    # -- evaluation and outputs --------------------------------------------------------------------------
    def validate(self, model: Any, data_yaml: str) -> EvalResult:
        """mAP50, mAP50-95, precision and recall of ``model`` on the staged validation images."""
        from ultralytics.models.yolo.detect import DetectionValidator

        from ftrecipe_yolo.bridge import detection_metrics

        args = {"data": data_yaml, "imgsz": self.trainer.args.imgsz, "batch": self.trainer.args.batch * 2,
                "device": self.trainer.args.device, "plots": False, "verbose": False, "save_json": False,
                "project": str(self.ctx.output_dir / "ultralytics"), "name": "val", "exist_ok": True}
        # full precision is Ultralytics' default (`half: false` in older releases, `quantize` unset in newer
        # ones, where `half` is deprecated and `quantize` is unknown to the older): name neither
        validator = DetectionValidator(args=args)
        return EvalResult(detection_metrics(validator(model=model)))

    def evaluate(self, model: Any, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        import copy

        return self.validate(copy.deepcopy(model), str(self.ctx.output_dir / "data" / "data.yaml"))

    def save(self, model: Any, directory: Path) -> None:
        """``best.pt`` and ``last.pt`` as Ultralytics writes them (and the exports the recipe asks for)."""
        directory.mkdir(parents=True, exist_ok=True)
        weights = self.trainer.wdir
        for name in ("best.pt", "last.pt"):
            if (weights / name).is_file():
                temporary = directory / f".{name}.tmp"
                shutil.copyfile(weights / name, temporary)
                os.replace(temporary, directory / name)
        if not (directory / "best.pt").is_file():
            raise RunFailure(f"Ultralytics wrote no weights under {weights}")
        if "onnx" in self.recipe.output.export:
            from ftrecipe_yolo.export import export_onnx

            path = export_onnx(directory / "best.pt", self.trainer.args.imgsz)
            self.ctx.log(f"exported {path.name}")

    def model_card_notes(self) -> list[str]:
        return [
            "## Use",
            "```python",
            "from ultralytics import YOLO",
            "detector = YOLO('model/best.pt')",
            "boxes = detector.predict('image.jpg')[0].boxes",
            "```",
            f"Classes: {', '.join(self.classes)}.",
            f"Augmentation during training: {augment.describe(self.augmentation)}.",
            "Trained with Ultralytics (AGPL-3.0): the weights are subject to its licence terms.",
        ]

    def model_card_metadata(self) -> dict[str, Any]:
        return {"library_name": "ultralytics", "pipeline_tag": "object-detection", "tags": ["yolo", "ultralytics"],
                "license": "agpl-3.0"}
