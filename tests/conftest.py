"""Shared fixtures: an offline environment, and the out-of-tree example plugin installed for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared" / "datasets"

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(autouse=True, scope="session")
def offline_environment(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("hf_home")
    previous = {k: os.environ.get(k) for k in [*OFFLINE, "HF_HOME"]}
    os.environ.update(OFFLINE)
    os.environ["HF_HOME"] = str(home)
    yield
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def install_fixture_plugin(name: str, target: Path) -> Path:
    """pip-install a fixture plugin package into ``target`` (a real install: dist-info, entry points)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(FIXTURES / name)],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding the installed out-of-tree example plugin."""
    return install_fixture_plugin("example_plugin", tmp_path_factory.mktemp("example_site"))


def run_cli(*args: str, site: Path | None = None, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m ftrecipe ...` in a subprocess, with extra plugins on the path."""
    environment = {**os.environ, **OFFLINE, **(env or {})}
    paths = [str(p) for p in ([site] if site else [])]
    if paths:
        environment["PYTHONPATH"] = os.pathsep.join(paths + [environment.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "ftrecipe", *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=timeout
    )


def run_ok(recipe: Path, out: Path, *args: str, site: Path | None = None) -> dict:
    """`ftrecipe run RECIPE --output OUT --quiet ...` that must succeed; returns its summary.json."""
    result = run_cli("run", str(recipe), "--output", str(out), "--quiet", *args, site=site)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="session")
def example_registry(example_site: Path):
    """An in-process registry with the built-ins plus the example plugin, found through its entry point."""
    from ftrecipe.registry import build_registry

    sys.path.insert(0, str(example_site))
    try:
        registry = build_registry()
    finally:
        sys.path.remove(str(example_site))
    assert "toy-regression" in registry.modalities and not registry.failed_plugins()
    return registry
