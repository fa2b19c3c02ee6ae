"""docs/plugins.md cannot rot: its files are written out as the plugin they describe, installed, and run;
its console lines are checked; and its own tests (which use ftrecipe.testing) must pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ftrecipe.testing import OFFLINE_ENV, FtrecipeRunner
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e  # runs ftrecipe end to end: outside the fast tier (pytest -m 'not e2e')

GUIDE = ROOT / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w+)(?: file=(\S+))?\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str | None, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in FENCE.finditer(GUIDE.read_text())]


def runner_env(runner: FtrecipeRunner) -> dict[str, str]:
    return {**os.environ, **OFFLINE_ENV, **runner.env}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The guide's plugin, written out file by file."""
    root = tmp_path_factory.mktemp("ftrecipe-echo")
    for _, name, text in blocks():
        if name:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    return root


def test_every_code_block_is_a_file_or_a_checked_console():
    kinds = [(lang, name is not None) for lang, name, _ in blocks()]
    assert all(named or lang == "console" for lang, named in kinds), kinds
    assert {name for _, name, _ in blocks() if name} >= {"pyproject.toml", "ftrecipe_echo/plugin.py", "ftrecipe_echo/task.py",
                                                        "ftrecipe_echo/own_loop.py", "tests/test_echo.py"}


def test_every_method_of_the_task_contract_is_in_the_guide():
    from ftrecipe.plugin import ModalityTask

    methods = [name for name, value in vars(ModalityTask).items() if callable(value) and not name.startswith("_")]
    assert [name for name in methods if f"`{name}(" not in GUIDE.read_text()] == []


def test_every_built_in_modality_can_be_planned():
    """`ftrecipe plan` covers every modality that ships: each describes its model and forward pass (its
    planner class, the guide's pattern, or the two hooks written on the task)."""
    from ftrecipe.plugin import ModalityTask, resolve
    from ftrecipe.registry import get_registry

    tasks = {m.name: resolve(m.task) for m in get_registry().modalities.values()}
    assert {"causal-lm", "text-classification", "whisper", "stable-diffusion", "yolo"} <= set(tasks)
    for name, task in tasks.items():
        if task.planner:
            plan = resolve(task.planner)
            assert callable(getattr(plan, "model", None)) and callable(getattr(plan, "forward", None)), name
        else:
            assert task.plan_model is not ModalityTask.plan_model and task.plan_forward is not ModalityTask.plan_forward, name
    assert all(tasks[name].planner for name in ("causal-lm", "text-classification", "whisper", "stable-diffusion", "yolo"))


def test_the_guide_imports_only_the_public_api():
    for lang, name, text in blocks():
        if lang == "python":
            deeper = re.findall(r"^from (ftrecipe\.[\w.]+) import", text, re.MULTILINE)
            assert set(deeper) <= {"ftrecipe.plugin"}, (name, deeper)


@pytest.mark.e2e
def test_the_console_session_of_the_guide(project, tmp_path):
    runner = FtrecipeRunner(tmp_path)
    runner.install(project)
    (console,) = [text for lang, _, text in blocks() if lang == "console"]
    lines = console.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("$ ftrecipe "):
            done = subprocess.run([sys.executable, "-m", "ftrecipe", *line[len("$ ftrecipe "):].split()], cwd=project,
                                  capture_output=True, text=True, timeout=600,
                                  env={**runner_env(runner), "PYTHONPATH": str(runner.sites[0])})
            assert done.returncode == 0, done.stderr
            shown = [out for out in lines[index + 1:] if not out.startswith("$ ")][:1]
            if shown and not lines[index + 1].startswith("$ "):
                assert done.stdout.splitlines()[0] == shown[0]
    summary = (project / "runs" / "echo" / "summary.json").read_text()
    assert '"eval_after"' in summary  # where the guide says the run lands


@pytest.mark.e2e
def test_the_guides_own_tests_pass(project):
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_echo.py"],
                          cwd=project, capture_output=True, text=True, timeout=900, env={**runner_env(FtrecipeRunner(project)), "PYTHONPATH": ""})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout
