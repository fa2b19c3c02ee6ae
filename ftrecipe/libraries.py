"""Living with the libraries ftrecipe drives: their console chatter collected, bitsandbytes left alone,
a switch they renamed reached by either name.

Transformers, Diffusers, PEFT, bitsandbytes, the Hugging Face hub clients and the kernel hub write
lines about themselves: hub look-ups, trust checks, deprecation and future warnings, optional kernels
they could not load. Printed as they come, they open ftrecipe's located errors and plans (a new
release adds a few each time). So the CLI collects them, log records and warnings alike, instead of
letting them reach the console: a run writes them to ``libraries.log`` in its folder, and the few
that change what the user gets are restated once in ftrecipe's words (:data:`NOTICES`). ``--debug``
leaves every library as it is.

Transformers, Diffusers and PEFT also import bitsandbytes whenever it is installed, and bitsandbytes
then reaches for hub kernels; Accelerate imports DeepSpeed on every ``save_pretrained``, and DeepSpeed
prints as it starts. Where they are not used, :func:`leave_out` makes them look absent (about 2 s and
two lines saved for bitsandbytes, 1 s and a line for DeepSpeed).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

LIBRARY_LOG = "libraries.log"
"""The file in a run's folder that holds what the libraries wrote during the run."""

# Libraries that give themselves a console handler when imported read their starting level from these;
# they hold their import-time notices back until `adopt_library_loggers` routes them to the collector.
_LEVEL_VARIABLES = ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "HF_HUB_VERBOSITY")

# (logger name prefix, text in the message, ftrecipe's words): library behaviour that changes what the
# user gets, said once where it happens.
NOTICES: tuple[tuple[str, str, str], ...] = (
    ("bitsandbytes", "gemm_4bit_forward",
     "bitsandbytes could not load its fast CPU 4-bit kernel (it comes from the Hugging Face kernel hub and "
     "is not in this machine's cache): 4-bit layers run on its slower built-in CPU path"),
    ("bitsandbytes", "Paged optimizers are not supported on CPU",
     "bitsandbytes pages nothing on a CPU: the 8-bit optimizer runs unpaged"),
)

_KEPT_IN_MEMORY = 1000  # lines held before a run's folder exists (a flood is cut, the file says so)


class LibraryMessages(logging.Handler):
    """Collects the log records (and, through :func:`logging.captureWarnings`, the warnings) of every
    logger outside ftrecipe: kept in memory until :meth:`write_to` names a file, appended there after."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.count = 0
        self.notices: list[str] = []
        self.on_notice: Callable[[str], None] | None = None
        self._file: TextIO | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] == "ftrecipe":
            return
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - a library's malformed record must not break the run
            line = f"{record.levelname} {record.name}: {record.msg!r}"
        self.count += 1
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()
        elif len(self.lines) < _KEPT_IN_MEMORY:
            self.lines.append(line)
        self._notice(record.name, record.getMessage() if record.args else str(record.msg))

    def _notice(self, name: str, message: str) -> None:
        for prefix, needle, words in NOTICES:
            if name.startswith(prefix) and needle in message and words not in self.notices:
                self.notices.append(words)
                if self.on_notice is not None:
                    self.on_notice(words)

    def tell(self, say: Callable[[str], None]) -> None:
        """Say the notices so far through ``say`` (a run's warning line), and each new one as it comes."""
        for words in self.notices:
            say(words)
        self.on_notice = say

    def write_to(self, path: Path) -> None:
        """Append what was collected to ``path``, and every later message as it comes."""
        self._file = path.open("a", encoding="utf-8")
        for line in self.lines:
            self._file.write(line + "\n")
        if self.count > len(self.lines):
            self._file.write(f"({self.count - len(self.lines)} earlier messages were not kept)\n")
        self._file.flush()
        self.lines = []

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


_collector: LibraryMessages | None = None


def collect_library_output() -> LibraryMessages:
    """Start collecting, before any library is imported; once per process (later calls return the same)."""
    global _collector
    if _collector is None:
        for name in _LEVEL_VARIABLES:
            os.environ.setdefault(name, "error")
        # the hub client's bars, and Transformers' (it reads the same switch): ftrecipe reports progress itself
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        _collector = LibraryMessages()
        logging.getLogger().addHandler(_collector)
        logging.captureWarnings(True)
    return _collector


def collector() -> LibraryMessages | None:
    """The process's collector, or None where output is left alone (``--debug``, the library API)."""
    return _collector


def adopt_library_loggers() -> None:
    """Route loggers that print to the console themselves (Transformers, Diffusers, the hub client,
    torch) into the collector, at their usual warning level. Call after the heavy imports."""
    if _collector is None:
        return
    consoles = (sys.stderr, sys.__stderr__, sys.stdout, sys.__stdout__)  # (DeepSpeed's logger writes to stdout)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or name.split(".")[0] == "ftrecipe":
            continue
        # any handler writing to the console (torch's has a `stream` property that is stderr), not a file's
        own = [h for h in logger.handlers if not isinstance(h, logging.FileHandler)
               and any(getattr(h, "stream", None) is console for console in consoles)]
        for handler in own:
            logger.removeHandler(handler)
        if own:
            logger.propagate = True
            if logger.level > logging.WARNING:
                logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def printed_by(library: str) -> Iterator[None]:
    """Collect what ``library`` prints (``print``, not a logger: DeepSpeed's "op built successfully") while
    the block runs, as that library's log records; where nothing collects, the lines are printed as they were."""
    if _collector is None:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                logging.getLogger(library).warning(line)


def leave_out(*packages: str) -> None:
    """Make ``packages`` look absent to the libraries that import them whenever they are installed; for a
    process that uses none of them (bitsandbytes where nothing is quantised; DeepSpeed, which Accelerate
    imports on every ``save_pretrained``, where the strategy is not deepspeed). (Python's documented way:
    a None in ``sys.modules`` makes ``find_spec`` answer None and an import fail.)"""
    for package in packages:
        if package not in sys.modules:
            sys.modules[package] = None  # type: ignore[assignment]
    if "deepspeed" in packages:
        # where it is imported all the same (Accelerate, imported earlier, found it available), it only
        # serves isinstance checks: spare its printed accelerator detection
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


_CHECKPOINTING_SWITCHES = (  # (on, off, the keyword of on's checkpoint arguments), newest names first
    ("activation_checkpointing_enable", "activation_checkpointing_disable", "activation_checkpointing_kwargs"),
    ("gradient_checkpointing_enable", "gradient_checkpointing_disable", "gradient_checkpointing_kwargs"),
)


def switch_checkpointing(model: Any, on: bool) -> bool:
    """Turn a model's activation (gradient) checkpointing on, non-reentrant, or off; False where the model
    has no such switch. Transformers 5.25 renamed ``gradient_checkpointing_enable``/``_disable`` to
    ``activation_checkpointing_*`` (the old names warn, and go in v6) while older 5.x releases have only
    the old ones; a plugin's own model may define either pair. Both are tried, newest first, so that no
    release in ftrecipe's range turns checkpointing off silently."""
    for enable, disable, keyword in _CHECKPOINTING_SWITCHES:
        switch = getattr(model, enable if on else disable, None)
        if callable(switch):
            if on:
                switch(**{keyword: {"use_reentrant": False}})
            else:
                switch()
            return True
    return False
