"""The one offline set-up of the suite, and shared fixtures: the out-of-tree example plugin installed for real.

The environment is set at import, before any test module imports transformers, datasets, evaluate or
ultralytics (they read it on import), with a throwaway HF_HOME: no test can reach for a hub or read
a real cache. Commands run through :mod:`ftrecipe.testing`, the helpers plugin authors use too.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ftrecipe.testing import OFFLINE_ENV, foreign_lines, install_plugin, throwaway_hf_home
from ftrecipe.testing import run_cli as _run_cli

_HF_HOME = str(throwaway_hf_home())  # the one FtrecipeRunner uses too: one warm process serves both
_YOLO_CONFIG = tempfile.mkdtemp(prefix="ftrecipe-tests-yolo-")  # Ultralytics' settings: never ~/.config
atexit.register(shutil.rmtree, _YOLO_CONFIG, True)
os.environ.update(OFFLINE_ENV)
os.environ["HF_HOME"] = _HF_HOME
os.environ["YOLO_CONFIG_DIR"] = _YOLO_CONFIG
os.environ["YOLO_VERBOSE"] = "false"  # no settings banner in the test log
if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the cores: one thread each (and each run it starts)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # instead of every torch oversubscribing them (a third faster here)

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY = FIXTURES / "toy.yaml"
SHARED = ROOT.parent / "shared" / "datasets"
OFFLINE = OFFLINE_ENV


_NO_NETWORK = """import socket, sys
LOG = {log!r}
def refuse(what):
    def blocked(*args, **kwargs):
        with open(LOG, 'a') as log:
            log.write(f'{{what}} {{args[:2]!r}}\\n')
        raise OSError(f'network use attempted: {{what}}')
    return blocked
class NoSocket(socket.socket):  # creating one is harmless (urllib3 probes IPv6 at import); reaching out is not
    def connect(self, address):
        return refuse('connect')(address) if self.family != socket.AF_UNIX else super().connect(address)
    def connect_ex(self, address):
        return refuse('connect')(address) if self.family != socket.AF_UNIX else super().connect_ex(address)
    def sendto(self, *args):
        return refuse('sendto')(*args)
socket.socket = NoSocket
for name in ('getaddrinfo', 'gethostbyname', 'create_connection'):
    setattr(socket, name, refuse(name))
from ftrecipe.cli import entry
entry(sys.argv[1:])
"""


def run_without_network(tmp_path: Path, *args: str, timeout: int = 600):
    """`ftrecipe ARGS` in a fresh process whose every socket connect and DNS lookup is refused and written
    down (a library may catch the error), with none of the suite's offline variables (HF_, YOLO_) set and
    a fresh HOME: ftrecipe's own defaults must keep it offline. Returns (result, attempts logged)."""
    import subprocess

    attempts = tmp_path / "network-attempts.log"
    guard = tmp_path / "guarded.py"
    guard.write_text(_NO_NETWORK.format(log=str(attempts)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "HF_", "TRANSFORMERS_"))}
    env["HOME"] = str(tmp_path / "home")
    result = subprocess.run([sys.executable, str(guard), *args], capture_output=True, text=True, env=env, timeout=timeout)
    return result, (attempts.read_text() if attempts.exists() else "")


def install_fixture_plugin(name: str, target: Path) -> Path:
    """pip-install a fixture plugin package into ``target`` (a real install: dist-info, entry points)."""
    return install_plugin(FIXTURES / name, target)


_PLAN_CACHES = tempfile.mkdtemp(prefix="ftrecipe-tests-plan-cache-")
atexit.register(shutil.rmtree, _PLAN_CACHES, True)
os.environ["FTRECIPE_CACHE_DIR"] = os.path.join(_PLAN_CACHES, "session")  # environments copied at import: never ~/.cache


LONGEST_FIRST = (
    "tests/plugins/whisper/test_runs.py", "tests/plugins/vision/test_detection_demo.py", "tests/core/test_runner.py", "tests/plugins/text/test_demos.py",
    "tests/plugins/diffusion/test_runs.py", "tests/plugins/text/test_fsdp.py", "tests/plugins/yolo/test_runs.py",
    "tests/core/test_sharded_runs.py", "tests/plugins/yolo/test_demo.py", "tests/core/test_deepspeed_runs.py",
    "tests/plugins/vision/test_out_of_tree.py", "tests/core/test_review_hooks.py", "tests/plugins/text/test_runs.py",
    "tests/core/test_plan_cli.py", "tests/docs/test_plugin_guide.py", "tests/recipes/test_shipped_recipes.py",
    "tests/bench/test_speed_ab.py", "tests/plugins/whisper/test_fsdp.py", "tests/plugins/text/test_resume.py",
    "tests/plugins/diffusion/test_units.py", "tests/core/test_own_loop.py", "tests/recipes/test_plan_probe.py",
    "tests/core/test_diff.py",
)
"""The test files that take longest (measured), in that order. The workers take whole files (``--dist
loadfile``) in collection order, so these go first: a long file started last would leave one worker
busy while the other waits."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True)
def plan_cache(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """Each test plans with a plan cache of its own (created on first use), so that a plugin patched in
    one test never answers another's plan; a module that plans the same recipes many times, unpatched,
    shares one by overriding this fixture."""
    path = Path(_PLAN_CACHES) / hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    monkeypatch.setenv("FTRECIPE_CACHE_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site directory holding the installed out-of-tree example plugin."""
    return install_fixture_plugin("example_plugin", tmp_path_factory.mktemp("example_site"))


def run_cli(*args: str, site: Path | None = None, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m ftrecipe ...` in a subprocess, offline, with an extra plugin site on the path. Every
    call checks that whatever the environment's libraries are, none of them wrote to the console."""
    result = _run_cli(*args, sites=[site] if site else [], env=env, cwd=cwd, timeout=timeout)
    if "--debug" not in args:
        assert not foreign_lines(result.stderr), f"a library wrote to ftrecipe's console:\n{result.stderr[-3000:]}"
    return result


def run_ok(recipe: Path, out: Path, *args: str, site: Path | None = None) -> dict:
    """`ftrecipe run RECIPE --output OUT --quiet ...` that must succeed; returns its summary.json."""
    result = run_cli("run", str(recipe), "--output", str(out), "--quiet", *args, site=site)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def run_whole_and_resumed(recipe: Path, tmp: Path, site: Path, stop_at: int | None,
                          whole: Path | None = None) -> tuple[Path, Path]:
    """Run ``recipe`` uninterrupted (unless ``whole`` is such a run already), and again stopped by Ctrl-C
    after step ``stop_at`` (the example plugin's ``fault`` callback, which the recipe must list) then
    continued with --resume; checks the stop and that the resumed process started at that step. Returns
    both output folders (``stop_at=None``: the uninterrupted run only, twice)."""
    if whole is None:
        whole = tmp / "whole"
        assert run_cli("run", str(recipe), "--output", str(whole), "--quiet", site=site).returncode == 0
    if stop_at is None:
        return whole, whole
    cut = tmp / "cut"
    first = run_cli("run", str(recipe), "--output", str(cut), site=site, env={"FTRECIPE_EXAMPLE_FAULT": f"int:{stop_at}"})
    assert first.returncode == 130, first.stderr
    resumed = run_cli("run", str(recipe), "--output", str(cut), "--resume", site=site)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step-{stop_at:07d}: step {stop_at}" in resumed.stdout
    return whole, cut


def same_safetensors(a: Path, b: Path) -> bool:
    """Bit-for-bit the same weights in two saved models."""
    import torch
    from safetensors.torch import load_file

    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def metric_records(run: Path, keys: tuple[str, ...]) -> list[dict]:
    """metrics.jsonl reduced to ``keys`` (throughput, which varies between runs, left out)."""
    return [{k: r.get(k) for k in keys} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


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
