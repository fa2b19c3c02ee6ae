"""Experiment trackers: the run as TensorBoard, MLflow and Weights & Biases show it.

Built on Accelerate's tracker classes (``accelerate.tracking``), with each library's own API where
Accelerate has none (MLflow images and run status, W&B artifacts and summary). Every backend gets the
resolved recipe as parameters, the data report, each logged step and evaluation from ``metrics.jsonl``
(as an observer of :class:`~ftrecipe.runner.outputs.MetricsLog`), the evaluations' images, and at the
end the loss curve, the summary and the saved model as an artifact (MLflow, W&B).

Only the main process logs. ``tracking.json`` in the run's folder names each backend's run and the last
step logged of each kind of record, so ``--resume`` reopens the same runs (W&B id with ``resume="allow"``,
MLflow ``run_id``, the same TensorBoard folder) and the steps it replays from the checkpoint are not
logged a second time. Nothing leaves the machine unless the recipe says so: MLflow writes a file store
in the run's folder and W&B runs offline by default, and neither library's telemetry or error
reporting is on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ftrecipe.errors import RecipeRuntimeError, RunFailure
from ftrecipe.sections import TRACKERS, TRACKING_EXTRA, RecipeBase, TrackingSection, library_installed

TRACKING_FILE = "tracking.json"
"""The run's folder: each backend's run id and the steps already logged (read by ``--resume``)."""


def keep_libraries_offline() -> None:
    """What the tracking libraries would send on their own (usage telemetry, crash reports) stays here, and
    W&B prints nothing to ftrecipe's console. Set before they are imported; the user's environment wins."""
    for name, value in (("WANDB_SILENT", "true"), ("WANDB_ERROR_REPORTING", "false"),
                        ("MLFLOW_DISABLE_TELEMETRY", "true")):
        os.environ.setdefault(name, value)


def metrics_of(record: Mapping[str, Any]) -> dict[str, float]:
    """A metrics.jsonl record as tracker metrics: ``train/loss``, ``eval/loss`` (the record's ``eval_loss``),
    ``eval/mse``; one curve per metric from the evaluation before training (step 0) to the one after. Those
    two are also ``eval_before/...`` and ``eval_after/...``: the numbers a table of runs compares."""
    kind = record.get("kind", "train")
    prefix = "train" if kind == "train" else "eval"
    values = {key.removeprefix(f"{prefix}_"): float(value) for key, value in record.items()
              if key not in ("kind", "step") and isinstance(value, (int, float)) and not isinstance(value, bool)}
    metrics = {f"{prefix}/{key}": value for key, value in values.items()}
    if kind in ("eval_before", "eval_after"):
        metrics.update({f"{kind}/{key}": value for key, value in values.items()})
    return metrics


def flat_params(data: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    """The resolved recipe as dotted scalar parameters (lists and nulls written as JSON)."""
    from ftrecipe.validation import flatten

    return {key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
            for key, value in flatten(dict(data)).items() if key}


def _rgb(image: Any) -> Any:
    return image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image


class Backend:
    """One tracker: Accelerate's class where it does the job, the library's API where it does not."""

    name = ""
    params_on_resume = False
    """Whether a reopened run is sent the parameters again (MLflow refuses a changed value; TensorBoard
    would add a second HParams entry)."""

    def __init__(self, tracking: TrackingSection, output_dir: Path, project: str, run_name: str, tags: list[str]) -> None:
        self.settings, self.output_dir = tracking, output_dir
        self.project, self.run_name, self.tags = project, run_name, tags
        self.tracker: Any = None

    def start(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Open the run (``stored``: what the last start returned, when resuming); returns what reopens it."""
        raise NotImplementedError

    def params(self, params: Mapping[str, Any], nested: Mapping[str, Any], data_report: Mapping[str, Any]) -> None:
        self.tracker.store_init_configuration(dict(params))

    def metrics(self, values: Mapping[str, float], step: int) -> None:
        self.tracker.log(dict(values), step=step)

    def images(self, images: Mapping[str, Any], step: int) -> None:
        raise NotImplementedError

    def final(self, summary: Mapping[str, Any], files: list[Path], model_dir: Path | None) -> None:
        """The end of the run: the summary, the run's small files and the model as an artifact."""

    def finish(self, exit_code: int = 0) -> None:
        self.tracker.finish()


class TensorBoardBackend(Backend):
    """Event files under ``tensorboard/<run name>/`` in the run's folder; a resumed run appends to them."""

    name = "tensorboard"

    def start(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        from accelerate.tracking import TensorBoardTracker

        self.tracker = TensorBoardTracker(self.run_name, self.output_dir / "tensorboard")
        self.tracker.start()
        return {"log_dir": str(Path(self.tracker.logging_dir).relative_to(self.output_dir))}

    def params(self, params: Mapping[str, Any], nested: Mapping[str, Any], data_report: Mapping[str, Any]) -> None:
        super().params(params, nested, data_report)  # the HParams dashboard
        self.tracker.log({"data_report": "```json\n" + json.dumps(data_report, indent=2, default=str) + "\n```"}, step=0)

    def images(self, images: Mapping[str, Any], step: int) -> None:
        import numpy as np

        for tag, image in images.items():
            self.tracker.log_images({tag: np.asarray(_rgb(image))[None]}, step=step, dataformats="NHWC")
        self.tracker.writer.flush()

    def final(self, summary: Mapping[str, Any], files: list[Path], model_dir: Path | None) -> None:
        text = "```json\n" + json.dumps(summary, indent=2, default=str) + "\n```"
        self.tracker.log({"summary": text}, step=int(summary.get("steps") or 0))


class MLflowBackend(Backend):
    """A run in the recipe's MLflow store, a file store in the run's folder (``mlruns/``) by default."""

    name = "mlflow"

    def start(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        import mlflow
        from accelerate.tracking import MLflowTracker

        uri = stored.get("tracking_uri") or self.settings.mlflow.tracking_uri or (self.output_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:  # a file store needs MLflow 3's opt-in (mlflow-skinny has no SQL store)
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        mlflow.set_tracking_uri(uri)
        tags = {"ftrecipe.run_name": self.run_name, **{tag: "" for tag in self.tags}}
        self.tracker = MLflowTracker(experiment_name=self.project, run_id=stored.get("run_id"), tags=tags,
                                     run_name=self.run_name, description=None)
        self.tracker.start()
        info = self.tracker.active_run.info
        return {"run_id": info.run_id, "experiment_id": info.experiment_id, "tracking_uri": uri}

    def params(self, params: Mapping[str, Any], nested: Mapping[str, Any], data_report: Mapping[str, Any]) -> None:
        import mlflow

        super().params(params, nested, data_report)
        mlflow.log_dict(dict(data_report), "data_report.json")

    def images(self, images: Mapping[str, Any], step: int) -> None:
        import mlflow

        for tag, image in images.items():  # a step slider per key in the run's images
            mlflow.log_image(_rgb(image), key=re.sub(r"[^\w\-. /]", "_", tag), step=step, synchronous=True)

    def final(self, summary: Mapping[str, Any], files: list[Path], model_dir: Path | None) -> None:
        for path in files:
            self.tracker.log_artifact(str(path))
        if model_dir is not None:
            self.tracker.log_artifacts(str(model_dir), "model")

    def finish(self, exit_code: int = 0) -> None:
        import mlflow

        mlflow.end_run(status="FINISHED" if exit_code == 0 else "KILLED" if exit_code in (130, 143) else "FAILED")


class WandbBackend(Backend):
    """A W&B run, offline under ``wandb/`` in the run's folder unless ``tracking.wandb.mode`` is online."""

    name = "wandb"
    params_on_resume = True  # config.update is idempotent, and an offline part killed early may have lost it

    def start(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        import wandb
        from accelerate.tracking import WandBTracker

        wandb_settings = self.settings.wandb
        self.tracker = WandBTracker(
            self.project, name=self.run_name, id=stored.get("id"), resume="allow", mode=wandb_settings.mode,
            entity=wandb_settings.entity, dir=str(self.output_dir), tags=self.tags, job_type="train",
            settings=wandb.Settings(**self.settings_for(wandb)),
        )
        self.tracker.start()
        return {"id": self.tracker.run.id, "mode": wandb_settings.mode}

    def settings_for(self, wandb: Any) -> dict[str, Any]:
        # ftrecipe writes its own progress: W&B neither captures the console nor writes to it
        settings: dict[str, Any] = {"silent": True, "console": "off"}
        if self.settings.wandb.mode == "offline" and "x_transaction_log_flush_interval" in wandb.Settings.model_fields:
            # offline, the .wandb file is the run: written every second rather than every 15 s, so that a
            # process killed outright (kill -9, out of host memory) loses at most the last second
            settings["x_transaction_log_flush_interval"] = 1.0
        return settings

    def params(self, params: Mapping[str, Any], nested: Mapping[str, Any], data_report: Mapping[str, Any]) -> None:
        self.tracker.run.config.update({**nested, "data_report": dict(data_report)}, allow_val_change=True)

    def images(self, images: Mapping[str, Any], step: int) -> None:
        self.tracker.log_images({tag: [_rgb(image)] for tag, image in images.items()}, step=step)

    def final(self, summary: Mapping[str, Any], files: list[Path], model_dir: Path | None) -> None:
        import wandb

        run = self.tracker.run
        run.summary.update({key: value for key, value in summary.items()  # steps, samples, train_seconds...
                            if isinstance(value, (int, float)) and not isinstance(value, bool)})
        if model_dir is not None:
            name = re.sub(r"[^\w\-.]", "-", f"{self.run_name}-model")
            artifact = wandb.Artifact(name, type="model", metadata={"recipe": summary.get("recipe"), "steps": summary.get("steps")})
            # referenced where it lies, not copied into W&B's staging folder and cache (a model is large)
            artifact.add_dir(str(model_dir), skip_cache=True, policy="immutable")
            run.log_artifact(artifact)

    def finish(self, exit_code: int = 0) -> None:
        self.tracker.run.finish(exit_code=exit_code)


BACKENDS: dict[str, type[Backend]] = {"tensorboard": TensorBoardBackend, "mlflow": MLflowBackend, "wandb": WandbBackend}


class Tracking:
    """The run's trackers (main process only). A tracker that fails while training is reported once and
    dropped; the training goes on. One that cannot start stops the run before training does."""

    def __init__(self, recipe: RecipeBase, output_dir: Path, *, smoke: bool = False,
                 warn: Callable[[str], None] = print) -> None:
        section = recipe.tracking
        self.recipe, self.output_dir, self.warn = recipe, output_dir, warn
        self.path = output_dir / TRACKING_FILE
        self.stored: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        project = self.stored.get("project") or section.project or recipe.name or "ftrecipe"
        run_name = self.stored.get("run_name") or section.run_name or output_dir.resolve().name
        tags = list(dict.fromkeys([*section.tags, "ftrecipe", recipe.model.modality, recipe.freeze.strategy,
                                   *(["smoke"] if smoke else [])]))
        self.backends = [BACKENDS[name](section, output_dir, project, run_name, tags) for name in section.backends]
        self.active: list[Backend] = []
        """The backends whose runs are open and logging."""
        self.logged: dict[str, int] = dict(self.stored.get("logged", {}))
        self.runs: dict[str, Any] = dict(self.stored.get("runs", {}))
        self.project, self.run_name = project, run_name
        self.closed = False

    def _save(self) -> None:
        from ftrecipe.runner.outputs import write_json

        write_json(self.path, {"project": self.project, "run_name": self.run_name, "runs": self.runs, "logged": self.logged})

    def start(self, nested_params: Mapping[str, Any], data_report: Mapping[str, Any]) -> None:
        """Open (or reopen) each backend's run; a new one gets the recipe and the data report."""
        keep_libraries_offline()
        params = flat_params(nested_params)
        for index, backend in enumerate(self.backends):
            module, distribution = TRACKERS[backend.name]
            if not library_installed(module):  # (validate says so first; this is for a recipe built in code)
                raise RecipeRuntimeError(("tracking", "backends", index),
                                         f"{backend.name} is not installed: {TRACKING_EXTRA} (or pip install {distribution})")
            stored = self.runs.get(backend.name, {})
            try:
                self.runs[backend.name] = backend.start(stored)
                self.active.append(backend)
                self._save()
                if not stored or backend.params_on_resume:
                    backend.params(params, nested_params, data_report)
            except Exception as error:  # noqa: BLE001 - the library's own words, before any training
                raise RunFailure(f"tracking: {backend.name} could not start its run: {type(error).__name__}: {error}") from error
        self._save()

    def _each(self, what: str, call: Callable[[Backend], None]) -> None:
        for backend in list(self.active):
            try:
                call(backend)
            except Exception as error:  # noqa: BLE001 - a tracker never stops the training
                self.active.remove(backend)
                self.warn(f"tracking: {backend.name} failed to log {what} ({type(error).__name__}: {error}); "
                          "it logs nothing more in this run")

    def _new(self, kind: str, step: int) -> bool:
        """Whether ``kind`` at ``step`` was not logged yet (a resumed run replays steps since its checkpoint)."""
        return step > self.logged.get(kind, -1)

    def on_record(self, record: Mapping[str, Any]) -> None:
        kind, step = str(record.get("kind", "train")), int(record.get("step", 0))
        if not self._new(kind, step):
            return
        values = metrics_of(record)
        if values:
            self._each(f"step {step}", lambda backend: backend.metrics(values, step))
        self.logged[kind] = step
        self._save()

    def on_images(self, kind: str, step: int, images: Mapping[str, Any]) -> None:
        if not self._new(f"{kind}:images", step):
            return
        tagged = {f"samples/{name}": image for name, image in images.items()}
        self._each(f"the images of step {step}", lambda backend: backend.images(tagged, step))
        self.logged[f"{kind}:images"] = step
        self._save()

    def finish(self, summary: Mapping[str, Any], model_dir: Path | None, loss_curve: Path | None) -> None:
        """The loss curve, the summary and the model, then close every run as finished."""
        step = int(summary.get("steps") or 0)
        if loss_curve is not None and loss_curve.is_file():
            from PIL import Image

            with Image.open(loss_curve) as opened:
                picture = opened.convert("RGB")
            self._each("the loss curve", lambda backend: backend.images({"loss_curve": picture}, step))
        files = [path for path in (self.output_dir / "summary.json", self.output_dir / "recipe.resolved.yaml") if path.is_file()]
        model = model_dir if self.recipe.tracking.artifacts and model_dir is not None and model_dir.is_dir() else None
        self._each("the summary and the model", lambda backend: backend.final(summary, files, model))
        self.close(0)

    def close(self, exit_code: int) -> None:
        """End every run: finished (0), killed (an interruption) or failed; once."""
        if self.closed:
            return
        self.closed = True
        self._each("the end of the run", lambda backend: backend.finish(exit_code))
        self._save()
