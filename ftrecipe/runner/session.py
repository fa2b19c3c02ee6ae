"""The runner's side of the own-loop path: the :class:`~ftrecipe.task.TrainSession` a task's ``fit`` gets.

Logged steps land in ``metrics.jsonl``, the progress display and the callbacks exactly as the common
loop's do (from the main process only); checkpoints go through the one atomic writer; Ctrl-C and
SIGTERM become :meth:`RunnerSession.should_stop`, agreed on by every process; evaluations become
``eval_before`` / ``eval_after`` (the ``after`` result's report becomes summary.json's ``eval_report``).
The task calls its ``evaluate`` itself, so it knows which evaluation runs: ``TaskContext.evaluation``
is the common loop's way of telling it, and stays None here. The runner then writes the same summary,
model card and loss curve as for any run.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftrecipe.freeze import FreezeReport, apply_freeze_plan
from ftrecipe.runner.checkpoint import (
    LoopState,
    atomic_checkpoint,
    fingerprint,
    latest_checkpoint,
    load_compatible_state,
)
from ftrecipe.runner.optim import step_counts
from ftrecipe.runner.outputs import MetricsLog
from ftrecipe.runner.progress import Reporter
from ftrecipe.runner.stop import Interrupted, StopFlag, StopVote
from ftrecipe.task import DataBundle, EvalResult, FitResult, ModalityTask, ResumePoint


class RunnerSession:
    """Progress, metrics, evaluations, stop requests and atomic checkpoints for a task that owns its loop."""

    def __init__(self, *, task: ModalityTask, accelerator: Any, data: DataBundle, output_dir: Path,
                 reporter: Reporter, metrics_log: MetricsLog, callbacks: list[Any], resume: bool,
                 max_steps: int | None) -> None:
        self.task, self.recipe, self.data = task, task.recipe, data
        self.accelerator, self.output_dir, self.reporter = accelerator, output_dir, reporter
        self.metrics_log, self.callbacks, self.resume = metrics_log, callbacks, resume
        self.is_main_process = accelerator.is_main_process
        self.world_size, self.rank, self.device = accelerator.num_processes, accelerator.process_index, accelerator.device
        training = self.recipe.training
        batches = math.ceil(math.ceil(len(data.train) / training.batch_size) / self.world_size)
        self.total_steps, self.steps_per_epoch = step_counts(batches, training, max_steps)
        self.stop_requested = False
        self.eval_before: dict[str, float] | None = None
        self.eval_after: EvalResult | None = None
        self.freeze_report: FreezeReport | None = None
        self.last_checkpoint: Path | None = None
        self._saved_at_stop = False
        self._seconds_before = 0.0
        self._started = time.perf_counter()
        self._flag = StopFlag()
        self._vote = StopVote(self._flag, accelerator)

    # -- set-up --------------------------------------------------------------------------------
    def resume_from(self) -> ResumePoint | None:
        if not self.resume:
            return None
        found = latest_checkpoint(self.output_dir / "checkpoints")
        if found is None:
            self.reporter.info("no complete checkpoint yet: starting from the beginning")
            return None
        stored = load_compatible_state(found, self.recipe)
        self.eval_before, self._seconds_before = stored.eval_before, stored.train_seconds
        self._started = time.perf_counter()
        if self.is_main_process:
            self.metrics_log.truncate_after(stored.step)
        self.accelerator.wait_for_everyone()
        self.reporter.info(f"resuming from {found.name}: step {stored.step}, epoch {stored.epoch + 1}")
        self.last_checkpoint = found
        return ResumePoint(found, stored.step, stored.epoch)

    def freeze(self, model: Any) -> tuple[Any, FreezeReport]:
        model, self.freeze_report = apply_freeze_plan(model, self.recipe, self.task.anatomy(model))
        self.reporter.info(f"freeze plan {self.freeze_report.describe()}")
        return model, self.freeze_report

    def start(self, start_step: int = 0) -> None:
        self.reporter.start(self.total_steps, self.steps_per_epoch, start_step)

    # -- reporting -----------------------------------------------------------------------------
    def log(self, step: int, *, loss: float, lr: float, epoch: float, **extra: float) -> None:
        record = {"kind": "train", "step": step, "epoch": round(float(epoch), 4), "loss": float(loss), "lr": float(lr), **extra}
        if self.is_main_process:
            self.metrics_log.append(record)
            for callback in self.callbacks:
                callback.on_log(record)
        self.reporter.step(step, record)

    def evaluation(self, when: str, step: int, result: EvalResult) -> None:
        if when not in ("before", "periodic", "after"):
            raise ValueError(f"evaluation 'when' is before, periodic or after, not {when!r}")
        kind = {"before": "eval_before", "after": "eval_after"}.get(when, "eval")
        if when == "before":
            self.eval_before = result.metrics
        elif when == "after":
            self.eval_after = result
        if self.is_main_process:
            self.metrics_log.append({"step": step, "kind": kind, **result.metrics})
            self.metrics_log.samples(kind, step, result)
            if when == "periodic":
                for callback in self.callbacks:
                    callback.on_evaluate(step, result.metrics)
        title = {"before": "eval before training", "after": "eval after training"}.get(when, f"eval at step {step}")
        self.reporter.evaluation(title, result.metrics, self.eval_before if when == "after" else None)

    # -- checkpoints and stopping ----------------------------------------------------------------
    @contextlib.contextmanager
    def checkpoint(self, step: int, epoch: int = 0) -> Iterator[Path]:
        state = LoopState(step=step, epoch=epoch, train_seconds=self.train_seconds, eval_before=self.eval_before,
                          fingerprint=fingerprint(self.recipe))
        root = self.output_dir / "checkpoints"
        with atomic_checkpoint(root, state, self.recipe.training.keep_checkpoints, is_main=self.is_main_process,
                               barrier=self.accelerator.wait_for_everyone) as directory:
            yield directory
        self.last_checkpoint = root / directory.name.removeprefix(".tmp-")
        self._saved_at_stop = self.stop_requested
        if self.is_main_process:
            for callback in self.callbacks:
                callback.on_checkpoint(step, self.last_checkpoint)

    def should_stop(self) -> bool:
        if not self.stop_requested and self._vote():
            self.stop_requested = True
            self.reporter.stop()
        return self.stop_requested

    @property
    def train_seconds(self) -> float:
        return self._seconds_before + time.perf_counter() - self._started

    # -- the runner's side -------------------------------------------------------------------------
    def fit(self) -> FitResult:
        """Run the task's ``fit`` with Ctrl-C turned into a stop request; complete its result."""
        try:
            with self._flag:
                fitted = self.task.fit(self)
        finally:
            self.reporter.stop()
        if self.stop_requested:
            raise Interrupted(self.last_checkpoint, fresh=self._saved_at_stop, signum=self._flag.signum)
        if not isinstance(fitted, FitResult):
            raise TypeError(f"{type(self.task).__name__}.fit() must return a FitResult, not {type(fitted).__name__}")
        fitted.train_seconds = fitted.train_seconds or self.train_seconds
        fitted.eval_before = fitted.eval_before if fitted.eval_before is not None else self.eval_before
        fitted.eval_after = fitted.eval_after or self.eval_after
        fitted.freeze_report = fitted.freeze_report or self.freeze_report
        return fitted
