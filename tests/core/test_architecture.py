"""The core's shape: declared layers and no import cycles (import-linter), and one public plugin API that
the built-in plugins and the example plugin use exclusively."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ftrecipe.plugin
from tests.conftest import FIXTURES, ROOT

PLUGIN_SOURCES = sorted((ROOT / "plugins").rglob("*.py")) + sorted(
    p for p in FIXTURES.rglob("*.py") if "build" not in p.parts
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the ftrecipe package found first under ``root``."""
    return subprocess.run([shutil.which("lint-imports") or "lint-imports", str(root / "pyproject.toml")],
                          capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)


def test_the_core_keeps_its_layers_and_has_no_import_cycles():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def test_a_cycle_through_a_deferred_import_breaks_the_contract(tmp_path):
    """The contract is not vacuous: an import inside a function (what once kept task.py and freeze.py
    importing each other from failing at import time) is caught."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "ftrecipe", copy / "ftrecipe")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    freeze = copy / "ftrecipe" / "freeze.py"
    freeze.write_text(freeze.read_text() + "\n\ndef _task():\n    from ftrecipe.task import TaskContext\n\n    return TaskContext\n")
    result = lint_imports(copy)
    assert result.returncode != 0 and "ftrecipe.freeze -> ftrecipe.task" in result.stdout, result.stdout[-3000:]


def _ftrecipe_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ftrecipe":
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "ftrecipe"]
    return found


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_plugins_import_only_the_public_plugin_api(path):
    deeper = [f"{path.name}:{line}: {module}" for line, module in _ftrecipe_imports(path) if module != "ftrecipe.plugin"]
    assert not deeper, f"plugins use `from ftrecipe.plugin import ...`, nothing deeper: {deeper}"


def test_the_plugin_api_exports_what_it_lists_without_importing_torch():
    assert all(hasattr(ftrecipe.plugin, name) for name in ftrecipe.plugin.__all__)
    script = "import sys, ftrecipe.plugin; print(sorted({'torch', 'transformers', 'accelerate'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
