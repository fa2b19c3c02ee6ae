"""``ftrecipe`` commands for tests, forked from a process that has already imported the heavy libraries.

A test suite runs ``python -m ftrecipe`` a few hundred times, and most of each run is importing torch,
Accelerate, Transformers, Datasets and evaluate (about 6 s of a toy run's 8 on two cores). A *warm
start* process imports them once, then forks one child per command: the child takes the command's
working directory, environment, plugin folders and arguments, writes its output to files, and runs
:func:`ftrecipe.cli.main` as ``python -m ftrecipe`` would (exit code, signals, ``atexit`` included).

One warm process is kept per environment as the libraries see it when imported (every variable but
``FTRECIPE_*``, ``PYTEST_*`` and ``PYTHONPATH``), the two most recently used at most. A command goes to a
fresh interpreter instead where the platform has no ``fork``, the warm process cannot start, a folder on
its ``PYTHONPATH`` holds a ``sitecustomize`` or ``usercustomize`` module (which only start-up runs), or
``FTRECIPE_WARM_START=0``. What the preloaded libraries print when imported is put in front of every
child's stderr, as a fresh interpreter would print it. The preloaded objects are frozen out of the
garbage collector (``gc.freeze``) before the first fork: a child's collections would otherwise walk them
all and copy every page they live on (a toy run 2.7 s -> 1.6 s).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

PRELOADED = ("torch", "torch._dynamo", "numpy", "accelerate", "transformers", "transformers.modeling_utils", "torchvision",
             "safetensors.torch", "datasets", "evaluate", "matplotlib.pyplot", "ftrecipe.validation")
"""Imported once by the warm process: what nearly every run imports and no recipe changes. Never a plugin
(a test may install its own copy), PEFT or bitsandbytes (a run leaves bitsandbytes out unless it quantises,
and PEFT looks for bitsandbytes when imported)."""

_READ_AT_RUN_TIME = ("FTRECIPE_", "PYTEST_")
"""Environment variables no preloaded library reads when it is imported."""

_SERVER = r"""
import json, os, sys
import importlib
replies = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # what a library prints when imported goes with its warnings, never into the replies
requests = os.fdopen(os.dup(0), "r")
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
sys.stdout.flush(); sys.stderr.flush()
base_path = list(sys.path)
import gc; gc.collect(); gc.freeze()  # the children share these objects: no collection walks (and copies) them
replies.write("ready\n")
for line in requests:
    request = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid:
        replies.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        replies.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        continue
    # the child: become `python -m ftrecipe ARGS` in the command's folder and environment
    replies.close(); requests.close()
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY), (2, request["stderr"], os.O_WRONLY)):
        opened = os.open(path, flags)
        os.dup2(opened, fd)
        os.close(opened)
    sys.path[:] = [base_path[0], *request["paths"], *base_path[1:]]
    importlib.invalidate_caches()
    import ftrecipe.cli
    from ftrecipe.warm_start import run_as_command
    if request["args"][:1] == ["run"]:  # a run on several devices forks its workers from here (ftrecipe.forked_workers)
        from ftrecipe.forked_workers import start_server
        start_server(ftrecipe.cli.main)
    run_as_command(ftrecipe.cli.main, request["args"], request["env"], request["cwd"])
"""


def run_as_command(main: Callable[..., int], args: list[str], env: dict[str, str], cwd: str | None) -> NoReturn:
    """Become ``python -m ftrecipe ARGS`` in this forked process (a warm child, or a forked worker whose
    streams are already in place): the signal handlers a fresh interpreter has, the command's folder and
    environment, ``main(args, owns_process=True)`` (``ftrecipe.cli.main``), and its exit code."""
    import traceback

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGCHLD"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if cwd:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py"), *args]
    try:
        code = main(args, owns_process=True)
    except SystemExit as stop:
        code = stop.code
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.exit(code)


class WarmStart:
    """One warm process (started on first use) that forks a child per command."""

    def __init__(self, env: dict[str, str], preload: tuple[str, ...] = PRELOADED) -> None:
        self.env = dict(env)
        self.preload = preload
        self.process: subprocess.Popen[str] | None = None
        self.import_output = ""
        self.broken = not hasattr(os, "fork") or env.get("FTRECIPE_WARM_START") == "0"
        self.lock = threading.Lock()

    def serves(self, env: dict[str, str]) -> bool:
        """Whether a command with ``env`` would run exactly as in a fresh interpreter."""
        if self.broken or _customizes_start_up(env.get("PYTHONPATH", "")):
            return False
        return _import_environment(env) == _import_environment(self.env)

    def _start(self) -> None:
        import shutil

        self._scratch = tempfile.mkdtemp(prefix="ftrecipe-warm-")
        errors = Path(self._scratch) / "imports.err"
        with open(errors, "w") as handle:
            self.process = subprocess.Popen([sys.executable, "-c", _SERVER, json.dumps(list(self.preload))],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=handle, text=True,
                                            env=self.env, start_new_session=True)
        self._pending = b""
        import atexit

        atexit.register(self.close)
        atexit.register(shutil.rmtree, self._scratch, True)
        if self._reply(timeout=300) != "ready":
            self.close()
            self.broken = True
            return
        self.import_output = errors.read_text(errors="replace")

    def _reply(self, timeout: float | None) -> str | None:
        """The warm process's next line, or None after ``timeout`` seconds or if it has gone."""
        import time

        assert self.process is not None and self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not selector.select(left):
                    return None
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode().strip() or None

    def run(self, args: list[str], env: dict[str, str], cwd: str | os.PathLike[str] | None,
            timeout: float | None) -> subprocess.CompletedProcess[str] | None:
        """The command's result, or None if the warm process cannot take it (run it fresh instead)."""
        with self.lock:
            if self.process is None and not self.broken:
                self._start()
            if self.broken or self.process is None or self.process.poll() is not None:
                self.broken = True
                return None
            return self._run(args, env, cwd, timeout)

    def _run(self, args: list[str], env: dict[str, str], cwd: Any, timeout: float | None) -> subprocess.CompletedProcess[str] | None:
        assert self.process is not None and self.process.stdin is not None
        base = [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in base]
        with tempfile.TemporaryDirectory(dir=self._scratch) as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            out.touch()
            err.touch()
            request = {"args": list(args), "env": env, "cwd": str(cwd) if cwd else None, "paths": paths,
                       "stdout": str(out), "stderr": str(err)}
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
            except OSError:
                self.broken = True
                return None
            started = self._reply(timeout=60)
            if started is None:
                self.broken = True
                return None
            pid = json.loads(started)["pid"]
            finished = self._reply(timeout)
            if finished is None:  # as subprocess.run does: kill it, then say it timed out
                os.kill(pid, signal.SIGKILL)
                self._reply(timeout=60)
                raise subprocess.TimeoutExpired([sys.executable, "-m", "ftrecipe", *args], timeout or 0,
                                                output=out.read_text(errors="replace"), stderr=err.read_text(errors="replace"))
            code = json.loads(finished)["returncode"]
            return subprocess.CompletedProcess([sys.executable, "-m", "ftrecipe", *args], code,
                                               out.read_text(errors="replace"),
                                               self.import_output + err.read_text(errors="replace"))

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _customizes_start_up(python_path: str) -> bool:
    """Whether a folder on ``python_path`` holds a module that only a starting interpreter runs."""
    return any((Path(folder) / name).is_file() for folder in python_path.split(os.pathsep) if folder
               for name in ("sitecustomize.py", "usercustomize.py"))


_WARM: dict[tuple[tuple[str, str], ...], WarmStart] = {}
_KEPT = 2
"""Warm processes kept per test process, one per environment (as libraries see it when imported)."""


def _import_environment(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in env.items() if k != "PYTHONPATH" and not k.startswith(_READ_AT_RUN_TIME)))


def warm_start(env: dict[str, str]) -> WarmStart:
    """A warm process for commands with ``env``: the one started for that environment (what the libraries
    read when imported), or a new one; beyond two, the least recently used is closed."""
    key = _import_environment(env)
    warm = _WARM.pop(key, None)
    if warm is None:
        if len(_WARM) >= _KEPT:
            _WARM.pop(next(iter(_WARM))).close()
        warm = WarmStart(env)
    _WARM[key] = warm  # the most recently used last
    return warm
