"""What a person sees while a run goes: a live rich display on a terminal, plain lines elsewhere.

Only the main process reports. ``--quiet`` prints the summary alone.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def device_memory() -> str:
    """Peak memory of the device in use (CUDA) or of this process (CPU)."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return f"{torch.cuda.max_memory_allocated() / 2**30:.1f}GiB"
    except ImportError:  # pragma: no cover
        pass
    try:
        import resource

        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f}GiB rss"
    except (ImportError, OSError):  # pragma: no cover - not on POSIX
        return "?"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Reporter:
    """Progress for one run: ``live`` (rich), ``plain`` (lines) or ``quiet``."""

    def __init__(self, *, enabled: bool, quiet: bool, console: Console | None = None) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self.main = enabled
        self.enabled = enabled and not quiet
        self.quiet = quiet or not enabled
        self.live = self.enabled and self.console.is_terminal
        self._progress: Progress | None = None
        self._overall = self._epoch = None

    # -- lines ---------------------------------------------------------------------------------
    # Lines are never wrapped by rich (soft_wrap): a terminal wraps them itself, and a log file or CI
    # log keeps each message on one line instead of cutting it at 80 columns.
    def info(self, message: str) -> None:
        if self.enabled:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        if self.enabled:
            self.console.print("warning:", message, style="yellow", markup=False, highlight=False, soft_wrap=True)
        elif self.main:  # --quiet keeps warnings, on stderr
            print(f"warning: {message}", file=sys.stderr)

    # -- training ------------------------------------------------------------------------------
    def start(self, total_steps: int, steps_per_epoch: int, start_step: int) -> None:
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[stats]}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._overall = self._progress.add_task("train", total=total_steps, completed=start_step, stats="")
        self._epoch = self._progress.add_task("epoch", total=steps_per_epoch, completed=0, stats="")

    def new_epoch(self, epoch: int, done_in_epoch: int) -> None:
        if self._progress is not None:
            self._progress.update(self._epoch, description=f"epoch {epoch + 1}", completed=done_in_epoch)

    def step(self, step: int, record: Mapping[str, Any] | None) -> None:
        """Advance by one optimizer step; ``record`` is the logged line when this step logs."""
        if self._progress is not None:
            stats = self._stats(record) if record else None
            self._progress.update(self._overall, completed=step, **({"stats": stats} if stats else {}))
            self._progress.advance(self._epoch)
        elif self.enabled and record:
            self.console.print(f"step {step}: {self._stats(record)}", markup=False, highlight=False, soft_wrap=True)

    def _stats(self, record: Mapping[str, Any]) -> str:
        parts = [f"loss {_fmt(record['loss'])}", f"lr {record['lr']:.2e}"]
        if record.get("samples_per_second"):
            parts.append(f"{record['samples_per_second']:.1f} samples/s")
        if record.get("tokens_per_second"):
            parts.append(f"{record['tokens_per_second']:.0f} tok/s")
        parts.append(f"mem {device_memory()}")
        return "  ".join(parts)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- evaluation and summary ----------------------------------------------------------------
    def evaluation(self, title: str, metrics: Mapping[str, float], before: Mapping[str, float] | None = None) -> None:
        if not self.enabled:
            return
        table = Table(title=title, show_header=True)
        table.add_column("metric")
        if before:
            table.add_column("before", justify="right")
        table.add_column("value", justify="right")
        for name, value in metrics.items():
            row = [name] + ([_fmt(before.get(name, ""))] if before else []) + [_fmt(value)]
            table.add_row(*row)
        if self._progress is not None:
            self._progress.console.print(table)
        else:
            self.console.print(table)

    def summary(self, summary: Mapping[str, Any]) -> None:
        """Always printed (also with --quiet) by the main process."""
        before, after = summary.get("eval_before") or {}, summary.get("eval_after") or {}
        lines = [
            f"done: {summary['steps']} steps in {summary['train_seconds']:.1f}s "
            f"(world size {summary['world_size']})",
        ]
        for name, value in after.items():
            was = f" (before {_fmt(before[name])})" if name in before else ""
            lines.append(f"  {name}: {_fmt(value)}{was}")
        lines.append(f"  model: {summary['model_path']}")
        print("\n".join(lines), flush=True)
