"""The reporting side of the runner, for tasks whose inner loop belongs to another library.

A task with ``owns_loop = True`` (an Ultralytics trainer, say) runs its own loop in
:meth:`~ftrecipe.task.ModalityTask.fit` and reports through a :class:`TrainSession`: logged steps
land in ``metrics.jsonl``, the progress display and the callbacks exactly as the common loop's do;
checkpoints are written atomically under ``checkpoints/``; evaluations become ``eval_before`` /
``eval_after``. The runner then writes the same summary, model card and loss curve as for any run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftrecipe.freeze import FreezeReport, apply_freeze_plan
from ftrecipe.runner.checkpoint import (
    PREFIX,
    STATE_FILE,
    LoopState,
    checkpoint_dirs,
    fingerprint,
    latest_checkpoint,
    load_compatible_state,
)
from ftrecipe.runner.loop import save_samples
from ftrecipe.runner.outputs import MetricsLog
from ftrecipe.runner.progress import Reporter
from ftrecipe.task import EvalResult, ModalityTask


@dataclass
class FitResult:
    """What a task's own loop hands back to the runner."""

    model: Any
    steps: int
    epochs: int = 0
    samples: int = 0
    freeze_report: FreezeReport | None = None


class TrainSession:
    """Progress, metrics, evaluations and atomic checkpoints for a task that owns its loop."""

    def __init__(self, *, task: ModalityTask, output_dir: Path, reporter: Reporter, metrics_log: MetricsLog,
                 callbacks: list[Any], resume: bool, max_steps: int | None) -> None:
        self.task, self.recipe = task, task.recipe
        self.output_dir, self.reporter, self.metrics_log, self.callbacks = output_dir, reporter, metrics_log, callbacks
        self.resume, self.max_steps = resume, max_steps
        self.eval_before: dict[str, float] | None = None
        self.eval_after: EvalResult | None = None
        self.started = time.perf_counter()

    # -- set-up --------------------------------------------------------------------------------
    def freeze(self, model: Any) -> tuple[Any, FreezeReport]:
        """Apply the recipe's freeze plan, as the common loop does."""
        model, report = apply_freeze_plan(model, self.recipe, self.task.anatomy(model))
        self.reporter.info(f"freeze plan {report.describe()}")
        return model, report

    def start(self, total_steps: int, steps_per_epoch: int, start_step: int = 0) -> None:
        self.reporter.start(total_steps, steps_per_epoch, start_step)

    # -- reporting -----------------------------------------------------------------------------
    def log(self, step: int, *, loss: float, lr: float, epoch: float, **extra: float) -> None:
        record = {"kind": "train", "step": step, "epoch": epoch, "loss": float(loss), "lr": float(lr), **extra}
        self.metrics_log.append(record)
        for callback in self.callbacks:
            callback.on_log(record)
        self.reporter.step(step, record)

    def evaluation(self, when: str, step: int, result: EvalResult) -> None:
        """``when``: ``before`` (the base model), ``periodic`` or ``after`` (the final model)."""
        kind = {"before": "eval_before", "after": "eval_after"}.get(when, "eval")
        self.metrics_log.append({"step": step, "kind": kind, **result.metrics})
        if when in ("before", "after"):
            save_samples(self.output_dir / f"{kind}_samples.jsonl", result)
        if when == "before":
            self.eval_before = result.metrics
        elif when == "after":
            self.eval_after = result
        else:
            for callback in self.callbacks:
                callback.on_evaluate(step, result.metrics)
        title = {"before": "eval before training", "after": "eval after training"}.get(when, f"eval at step {step}")
        self.reporter.evaluation(title, result.metrics, self.eval_before if when == "after" else None)

    # -- checkpoints ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def checkpoint(self, step: int, epoch: int = 0) -> Iterator[Path]:
        """Yield a fresh directory to write into; on success it becomes ``checkpoints/step-N`` atomically."""
        root = self.output_dir / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        temporary = root / f".tmp-{PREFIX}{step:07d}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        yield temporary
        state = LoopState(step=step, epoch=epoch, train_seconds=time.perf_counter() - self.started,
                          eval_before=self.eval_before, fingerprint=fingerprint(self.recipe))
        (temporary / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        final = root / f"{PREFIX}{step:07d}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        for old in checkpoint_dirs(root)[: -self.recipe.training.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        for callback in self.callbacks:
            callback.on_checkpoint(step, final)

    def resume_from(self) -> Path | None:
        """The last complete checkpoint when the run was started with --resume (checked against the recipe)."""
        found = latest_checkpoint(self.output_dir / "checkpoints") if self.resume else None
        if found is not None:
            stored = load_compatible_state(found, self.recipe)
            self.eval_before = stored.eval_before
            self.metrics_log.truncate_after(stored.step)
        return found

    def stop(self) -> None:
        self.reporter.stop()

    @property
    def train_seconds(self) -> float:
        return time.perf_counter() - self.started
