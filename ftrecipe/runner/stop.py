"""Ctrl-C and SIGTERM as a request to checkpoint and stop, agreed on by every process."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: the run stopped and can be resumed from ``checkpoint``.

    ``fresh`` says the checkpoint was written at the stop; otherwise it is an earlier one (or None:
    the run starts over), because a task's own loop returned without checkpointing.
    """

    def __init__(self, checkpoint: Path | None, fresh: bool = True, signum: int = signal.SIGINT) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint, self.fresh, self.signum = checkpoint, fresh, int(signum)

    @property
    def exit_code(self) -> int:
        """As a shell reports a process ended by the signal: 130 for Ctrl-C, 143 for SIGTERM."""
        return 128 + self.signum


class StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop at the next step boundary.

    Under torchrun one Ctrl-C arrives twice, from the terminal and forwarded by the launcher,
    milliseconds apart; only a second signal at least ``SAME_SIGNAL_SECONDS`` later is a
    second Ctrl-C, which stops at once.
    """

    SAME_SIGNAL_SECONDS = 1.0

    def __init__(self) -> None:
        self.requested = False
        self.signum = int(signal.SIGINT)
        self._first = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self.requested:
            self.requested, self._first, self.signum = True, now, signum
        elif now - self._first >= self.SAME_SIGNAL_SECONDS:
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class StopVote:
    """Do the processes want to stop? All must agree on the step, or the checkpoint's collectives hang.

    Each step's vote is summed across processes and read one step later, so reading it never waits
    for the step just queued on the GPU (reading it at once would stall every step); every process
    reads the same lagged sum, so all stop together, one step after the signal.
    """

    def __init__(self, stop: StopFlag, accelerator: Any) -> None:
        self.stop, self.accelerator = stop, accelerator
        self.pending: Any = None

    def __call__(self) -> bool:
        if self.accelerator.num_processes == 1:
            return self.stop.requested
        import torch

        previous = self.pending
        vote = torch.tensor(1.0 if self.stop.requested else 0.0, device=self.accelerator.device)
        self.pending = self.accelerator.reduce(vote, "sum")
        return previous is not None and bool(previous.item() > 0)
