"""Ultralytics' trainer driven by ftrecipe: its callbacks report to the run's session.

Ultralytics keeps its inner loop (warm-up, EMA, NaN recovery, augmentation in its loader); this
module adds what ftrecipe promises for every modality:

- progress and ``metrics.jsonl``: one logged step per batch (``on_train_batch_end``), mAP, precision
  and recall after every epoch's validation (``on_fit_epoch_end``);
- stopping: Ctrl-C or SIGTERM sets ``trainer.stop`` between batches; the partial epoch is then
  abandoned (no validation, no save) and the run exits 130 / 143;
- checkpoints: after every epoch, atomically, the state Ultralytics' own ``last.pt`` lacks for an exact
  continuation: the live weights (``last.pt`` holds only the EMA), every random generator and the
  data loader's shuffling generator;
- resume: a fresh trainer, with the recipe's (possibly larger) number of epochs, restored from that
  state before its first batch, so that the continued run equals an uninterrupted one, batch for
  batch (exact when every batch is an optimizer step, i.e. ``training.nominal_batch`` not above
  ``batch_size``, and the loader runs in the main process, as it always does on a CPU).
"""

from __future__ import annotations

import copy
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ftrecipe.plugin import EvalResult, ResumePoint, RunFailure, TrainSession

STATE = "ultralytics_state.pt"
METRICS = {"metrics/mAP50(B)": "mAP50", "metrics/mAP50-95(B)": "mAP50-95", "metrics/precision(B)": "precision",
           "metrics/recall(B)": "recall"}


class StopRequested(Exception):
    """Raised from a callback to leave Ultralytics' loop at once (no validation or saving of a partial epoch)."""


def detection_metrics(results: dict[str, Any] | None) -> dict[str, float]:
    """ftrecipe's names for the numbers Ultralytics' validator reports."""
    results = results or {}
    return {ours: round(float(results[theirs]), 6) for theirs, ours in METRICS.items() if theirs in results}


@dataclass
class Transfer:
    """How many tensors of the pre-trained weights went into the new model."""

    transferred: int = 0
    total: int = 0
    missing_backbone: list[str] = field(default_factory=list)


def trainer_class() -> type:
    """Ultralytics' detection trainer, counting what transfers when the head is replaced."""
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.torch_utils import intersect_dicts

    class FtrecipeDetectionTrainer(DetectionTrainer):
        transfer: Transfer | None = None

        def get_model(self, cfg=None, weights=None, verbose=True):
            model = super().get_model(cfg=cfg, weights=weights, verbose=False)
            if weights is not None:
                source = (weights.get("ema") or weights["model"]) if isinstance(weights, dict) else weights
                target = model.state_dict()
                shared = intersect_dicts(source.float().state_dict(), target)
                backbone = len(model.yaml["backbone"])
                missing = [k for k in target if int(k.split(".")[1]) < backbone and k not in shared and target[k].is_floating_point()]
                self.transfer = Transfer(len(shared), len(target), missing)
            return model

    return FtrecipeDetectionTrainer


class SessionBridge:
    """The callbacks that connect one Ultralytics trainer to one ftrecipe session."""

    def __init__(self, task: Any, session: TrainSession, *, resume: ResumePoint | None, steps_per_epoch: int) -> None:
        self.task, self.session, self.resume = task, session, resume
        self.recipe = task.recipe
        self.per_epoch = steps_per_epoch
        self.step = resume.step if resume else 0
        self.ended_epoch: int | None = None
        self.stopped_by_signal = False

    def attach(self, trainer: Any) -> None:
        for event in ("on_pretrain_routine_end", "on_train_batch_end", "on_train_epoch_end", "on_fit_epoch_end"):
            trainer.add_callback(event, getattr(self, event))

    # -- before the first batch ----------------------------------------------------------------------
    def on_pretrain_routine_end(self, trainer: Any) -> None:
        self.task.after_setup(trainer)
        if self.resume is not None:
            self.restore(trainer, self.resume.directory)
        elif self.recipe.evaluation.before_training and self.session.is_main_process:
            model = copy.deepcopy(unwrap(trainer.model))
            self.session.evaluation("before", 0, self.task.validate(model, trainer.args.data))
        self.session.start(self.step)

    # -- every batch ---------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: Any) -> None:
        self.step += 1
        items = {f"{k}": float(v) for k, v in (trainer.loss_items or {}).items()}
        last = self.step >= self.session.total_steps
        if self.step % self.recipe.training.log_every == 0 or last:
            lr = trainer.optimizer.param_groups[0]["lr"]
            self.session.log(self.step, loss=sum(items.values()), lr=lr, epoch=self.step / self.per_epoch, **items)
        if self.session.should_stop():
            self.stopped_by_signal = True
            trainer.stop = True
        elif last:
            trainer.stop = True

    def on_train_epoch_end(self, trainer: Any) -> None:
        self.ended_epoch = trainer.epoch
        if self.stopped_by_signal:
            raise StopRequested

    # -- after each epoch's validation ---------------------------------------------------------------
    def on_fit_epoch_end(self, trainer: Any) -> None:
        if trainer.epoch != self.ended_epoch:
            return  # Ultralytics' final validation of best.pt: reported as eval_after by the task
        if trainer.metrics:
            self.session.evaluation("periodic", self.step, EvalResult(detection_metrics(trainer.metrics)))
        if self.step % self.per_epoch == 0:  # a whole epoch: the place an exact continuation starts from
            with self.session.checkpoint(self.step, epoch=self.step // self.per_epoch) as directory:
                if self.session.is_main_process:
                    self.save(trainer, directory)

    # -- state -----------------------------------------------------------------------------------------
    def save(self, trainer: Any, directory: Path) -> None:
        loader = trainer.train_loader
        state = {
            "model": unwrap(trainer.model).state_dict(),
            "ema": trainer.ema.ema.state_dict(),
            "ema_updates": trainer.ema.updates,
            "optimizer": trainer.optimizer.state_dict(),
            "scaler": trainer.scaler.state_dict(),
            "epoch": trainer.epoch,
            "best_fitness": trainer.best_fitness,
            "stopper": {"best_fitness": trainer.stopper.best_fitness, "best_epoch": trainer.stopper.best_epoch},
            "random": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "loader": loader.generator.get_state() if loader.generator is not None else None,
        }
        torch.save(state, directory / STATE)
        for name in ("best.pt", "last.pt"):
            if (trainer.wdir / name).is_file():
                shutil.copy2(trainer.wdir / name, directory / name)

    def restore(self, trainer: Any, directory: Path) -> None:
        path = directory / STATE
        if not path.is_file():
            raise RunFailure(f"{directory} holds no Ultralytics state ({STATE}); it was not written by the yolo modality")
        state = torch.load(path, map_location=trainer.device, weights_only=False)
        unwrap(trainer.model).load_state_dict(state["model"])
        trainer.ema.ema.load_state_dict(state["ema"])
        trainer.ema.updates = state["ema_updates"]
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scaler.load_state_dict(state["scaler"])
        trainer.best_fitness = state["best_fitness"]
        trainer.stopper.best_fitness = state["stopper"]["best_fitness"]
        trainer.stopper.best_epoch = state["stopper"]["best_epoch"]
        trainer.start_epoch = state["epoch"] + 1
        trainer.scheduler.last_epoch = trainer.start_epoch - 1
        for name in ("best.pt", "last.pt"):
            if (directory / name).is_file():
                shutil.copy2(directory / name, trainer.wdir / name)
        close = trainer.args.close_mosaic
        if close and trainer.start_epoch > trainer.epochs - close:
            trainer._close_dataloader_mosaic()  # as the uninterrupted run did at its epoch; not again below
            trainer.args.close_mosaic = 0
        loader = trainer.train_loader
        if loader.iterator is None:  # the iterator draws a worker seed from the loader's generator: draw it first
            loader.iterator = loader._get_iterator()
        if state["loader"] is not None:
            loader.generator.set_state(state["loader"])
        random.setstate(state["random"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: Any) -> Any:
    return model.module if hasattr(model, "module") else model
