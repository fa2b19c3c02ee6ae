"""Runner callbacks: plugins observe a run (log lines, evaluations, checkpoints) without owning it.

Torch-free: a callback module is imported only by ``ftrecipe run``, but the base class is part of the
public plugin API (:mod:`ftrecipe.plugin`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class RunCallback:
    """Subclass and override what you need; every method is optional. Runs on the main process only.

    A callback that raises stops the run like any other error (exit 1, the message printed), so a
    tracker that may lose its connection should catch its own errors.
    """

    def __init__(self, output_dir: Path, recipe: Any) -> None:
        self.output_dir = output_dir
        self.recipe = recipe

    def on_log(self, record: dict[str, Any]) -> None:
        """A logged training step (the same object written to metrics.jsonl)."""

    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        """A periodic evaluation (``training.eval_every``) finished."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """A checkpoint was written (atomically) to ``path``."""

    def on_end(self, summary: dict[str, Any]) -> None:
        """The run finished; ``summary`` is what summary.json holds."""
