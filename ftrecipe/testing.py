"""Testing helpers for plugin authors, as pytest ships ``pytester``.

Switch them on in your ``conftest.py`` and test your plugin the way a user runs it::

    pytest_plugins = ["ftrecipe.testing"]

    def test_my_modality_learns(ftrecipe_runner):
        ftrecipe_runner.install("path/to/my-plugin")        # a real pip install into a private folder
        recipe = ftrecipe_runner.write_recipe('''
            model: {modality: echo, base: scratch, init: scratch}
            data: {format: synthetic}
        ''')
        run = ftrecipe_runner.run(recipe, "--smoke")        # `ftrecipe run` into a temporary directory
        assert run.returncode == 0, run.stderr
        assert run.summary["steps"] == 2

Every command runs ``python -m ftrecipe`` in a process of its own with the Hugging Face libraries and
Ultralytics offline, so what passes here passes for a user, and no test can reach for a hub. The process
is forked from one that has imported torch and the other heavy libraries already
(:mod:`ftrecipe.warm_start`; ``FTRECIPE_WARM_START=0`` starts each from scratch instead).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "true",
    "TOKENIZERS_PARALLELISM": "false",
}
"""Environment that keeps every library of the stack away from the network."""


_OWN_LINE = re.compile(
    r"ftrecipe\b|warning: |--set |\(|\s"  # the CLI's messages, hints and their continuations
    r"|interrupted\b|resume with: "  # a stopped run: where it stopped, how to go on
    r"|hardware\.nodes is |or with `accelerate launch"  # how to start a job on several nodes
    r"|\S+:\d+:\d+: "  # a located diagnostic, file:line:col (a Python warning has one number)
    r"|\S+\.ya?ml: "  # a diagnostic about a whole recipe
)


def foreign_lines(stderr: str) -> list[str]:
    """The lines of a command's ``stderr`` that ftrecipe did not write: a library talking about itself
    (hub look-ups, trust checks, deprecations) or a traceback. ftrecipe's own output has none."""
    return [line for line in stderr.splitlines() if line.strip() and not _OWN_LINE.match(line)]


def install_plugin(folder: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """``pip install`` the plugin package in ``folder`` into the directory ``target`` (its dist-info and
    entry points included, exactly as users get them) and return ``target``; put it on ``PYTHONPATH``."""
    target = Path(target)
    with tempfile.TemporaryDirectory(prefix="ftrecipe-plugin-build-") as scratch:
        # built from a copy: setuptools builds in the source folder, and two test workers installing
        # the same plugin at once would collide in its build/ directory
        source = shutil.copytree(folder, Path(scratch) / Path(folder).name,
                                 ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target),
             str(source)],
            capture_output=True, text=True,
        )
    if result.returncode != 0:
        raise RuntimeError(f"pip could not install {folder}:\n{result.stderr}")
    return target


def run_cli(*args: str, sites: list[Path] = (), env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m ftrecipe ARGS`` offline, with plugin folders from :func:`install_plugin` on the path."""
    environment = {**os.environ, **OFFLINE_ENV, **(env or {})}
    paths = [str(site) for site in sites]
    if paths:
        environment["PYTHONPATH"] = os.pathsep.join([*paths, environment.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    from ftrecipe.warm_start import warm_start

    warm = warm_start(environment)
    if warm.serves(environment):  # forked from a process that has imported torch and the rest already
        done = warm.run(list(args), environment, cwd, timeout)
        if done is not None:
            return done
    return subprocess.run([sys.executable, "-m", "ftrecipe", *args], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=timeout)


@dataclass
class RunResult:
    """One finished `ftrecipe run`: its exit code and output, and what it left in ``output``."""

    returncode: int
    stdout: str
    stderr: str
    output: Path

    @cached_property
    def summary(self) -> dict[str, Any]:
        """summary.json (eval_before, eval_after, steps, data report, ...)."""
        return json.loads((self.output / "summary.json").read_text())

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        """metrics.jsonl: one record per logged step or evaluation."""
        path = self.output / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []

    @cached_property
    def run_info(self) -> dict[str, Any]:
        """run.json (versions, hardware, seed, command, data file hashes)."""
        return json.loads((self.output / "run.json").read_text())


_HF_HOME: Path | None = None


def throwaway_hf_home() -> Path:
    """One empty Hugging Face home for every runner of this test session, removed at exit: no run reads
    the user's hub cache, and the runs share one warm process (:mod:`ftrecipe.warm_start` keeps one per
    environment, and the libraries read ``HF_HOME`` when imported)."""
    global _HF_HOME
    if _HF_HOME is None:
        import atexit
        import tempfile

        _HF_HOME = Path(tempfile.mkdtemp(prefix="ftrecipe-testing-hf-"))
        atexit.register(shutil.rmtree, _HF_HOME, True)
    return _HF_HOME


class FtrecipeRunner:
    """Runs recipes into fresh directories under one base directory (a test's ``tmp_path``)."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.sites: list[Path] = []
        self.env: dict[str, str] = {"HF_HOME": str(throwaway_hf_home())}
        self._runs = 0

    def install(self, folder: str | os.PathLike[str]) -> Path:
        """Install a plugin package for the runs that follow; returns its site folder."""
        site = install_plugin(folder, self.base / f"site-{len(self.sites)}")
        self.sites.append(site)
        return site

    def write_recipe(self, text: str, name: str = "recipe.yaml") -> Path:
        """Write a recipe (dedented) next to the runs; relative data paths resolve from here."""
        path = self.base / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Any ftrecipe command (``validate``, ``plugins``, ...)."""
        return run_cli(*args, sites=self.sites, env={**self.env, **(env or {})}, cwd=self.base, timeout=timeout)

    def run(self, recipe: str | os.PathLike[str], *args: str, output: str | os.PathLike[str] | None = None,
            env: dict[str, str] | None = None, timeout: float = 600) -> RunResult:
        """``ftrecipe run RECIPE --output DIR ARGS``; DIR is a new folder unless ``output`` names one
        (pass the same ``output`` again with ``--resume`` to continue a run)."""
        if output is None:
            self._runs += 1
            output = self.base / f"run-{self._runs}"
        done = self.cli("run", str(recipe), "--output", str(output), *args, env=env, timeout=timeout)
        return RunResult(done.returncode, done.stdout, done.stderr, Path(output))


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture
    def ftrecipe_runner(tmp_path: Path) -> FtrecipeRunner:
        """A :class:`FtrecipeRunner` working in this test's temporary directory."""
        return FtrecipeRunner(tmp_path)
