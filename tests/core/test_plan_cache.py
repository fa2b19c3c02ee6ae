"""The plan cache: a second plan of the same recipe answers from disk, identically and without torch; anything
the answer depends on (a data file, the plugin's code, a library version) makes it measure afresh."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftrecipe.plan import cache as plan_cache_module
from ftrecipe.plan.cache import PlanCache
from tests.conftest import ROOT
from tests.conftest import run_cli as run_in_a_process

DEMO = ROOT / "recipes" / "demo" / "llama.yaml"


def test_a_second_plan_is_the_same_plan_without_importing_torch(plan_cache):
    cold = run_in_a_process("plan", str(DEMO), "--format", "json")
    assert cold.returncode == 0, cold.stderr
    assert list((plan_cache / "plan").glob("*/*.json")), "the first plan remembered nothing"
    warm = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftrecipe", "plan", str(DEMO), "--format", "json"],
                          capture_output=True, text=True)
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert json.loads(warm.stdout) == json.loads(cold.stdout)
    imported = {line.rsplit("|", 1)[-1].strip() for line in warm.stderr.splitlines() if line.startswith("import time:")}
    assert not {"torch", "transformers", "peft", "ftrecipe_text.causal_lm"} & imported
    poisoned = [p for p in (plan_cache / "plan" / "footprint").glob("*.json")]
    for path in poisoned:  # proof that the warm plan read the cache, and that --no-cache does not
        entry = json.loads(path.read_text())
        entry["total"] += 1
        path.write_text(json.dumps(entry))
    read_back = run_in_a_process("plan", str(DEMO), "--format", "json")
    fresh = run_in_a_process("plan", str(DEMO), "--format", "json", "--no-cache")
    total = json.loads(cold.stdout)["params"]["total"]
    assert json.loads(read_back.stdout)["params"]["total"] == total + 1
    assert json.loads(fresh.stdout)["params"]["total"] == total


def _cache(tmp_path, recipe=None, **kwargs):
    recipe = recipe or {"model": {"base": "data/train.jsonl"}, "data": {"train": "data/train.jsonl"}}
    return PlanCache(recipe, tmp_path, "ftrecipe_text", root=tmp_path / "cache", **kwargs)


def _answer(cache, value=1):
    calls = []

    def compute():
        calls.append(value)
        return {"value": value}

    return cache.remembered("data", {"r": 1}, compute, dump=lambda v: v, load=dict), calls


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "data" / "clip.wav").write_bytes(b"0" * 10)
    return tmp_path


def test_an_answer_is_remembered_until_what_it_depends_on_changes(project, monkeypatch):
    assert _answer(_cache(project))[1] == [1]
    assert _answer(_cache(project))[1] == []  # remembered
    (project / "data" / "clip.wav").write_bytes(b"0" * 11)  # a file beside the manifest the recipe names
    assert _answer(_cache(project))[1] == [1]
    assert _answer(_cache(project))[1] == []
    versions = plan_cache_module.library_versions()
    monkeypatch.setattr(plan_cache_module, "library_versions", lambda: {**versions, "transformers": "99.0"})
    assert _answer(_cache(project))[1] == [1]
    monkeypatch.setattr(plan_cache_module, "package_stamp", lambda package: [package, "edited"])
    assert _answer(_cache(project))[1] == [1]
    assert _answer(_cache(project, extra={"runs_checkpoint_code": True}))[1] == [1]


def test_a_hub_id_is_stamped_by_its_cache_entry_so_a_download_plans_afresh(project, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(project / "hub"))
    recipe = {"model": {"base": "acme/model"}, "data": {}}
    assert _answer(_cache(project, recipe))[1] == [1]
    assert _answer(_cache(project, recipe))[1] == []
    refs = project / "hub" / "models--acme--model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("abc")
    assert _answer(_cache(project, recipe))[1] == [1]


def test_failures_are_not_remembered_and_a_damaged_entry_is_measured_again(project):
    cache = _cache(project)

    def fails():
        raise ValueError("a located mistake")

    with pytest.raises(ValueError):
        cache.remembered("data", {"r": 1}, fails, dump=lambda v: v, load=dict)
    assert _answer(cache)[1] == [1]
    for entry in (project / "cache" / "plan" / "data").glob("*.json"):
        entry.write_text("{not json")
    assert _answer(cache, 2) == ({"value": 2}, [2])


def test_disabled_or_too_large_to_stamp_means_no_cache(project, monkeypatch):
    assert _answer(_cache(project, enabled=False))[1] == [1]
    assert _answer(_cache(project, enabled=False))[1] == [1]
    monkeypatch.setattr(plan_cache_module, "MAX_STAMPED_FILES", 1)
    big = _cache(project)
    assert not big.enabled and _answer(big)[1] == [1] and _answer(big)[1] == [1]
    assert not (project / "cache" / "plan").exists()


def test_a_model_folder_relative_to_the_working_directory_is_stamped(project, monkeypatch):
    """Transformers resolves a relative model.base against the working directory, not the recipe's folder."""
    (project / "models" / "mine").mkdir(parents=True)
    (project / "models" / "mine" / "config.json").write_text('{"model_type": "llama"}')
    (project / "recipes").mkdir()
    monkeypatch.chdir(project)
    recipe = {"model": {"base": "models/mine"}, "data": {}}

    def cache():
        return PlanCache(recipe, project / "recipes", "ftrecipe_text", root=project / "cache")

    assert _answer(cache())[1] == [1]
    assert _answer(cache())[1] == []
    (project / "models" / "mine" / "config.json").write_text('{"model_type": "evil-llama", "auto_map": {}}')
    assert _answer(cache())[1] == [1]


def _rewrite(path: Path, data: bytes | None = None) -> None:
    """The file written anew, as a checkout writes it: new time, the same bytes unless ``data``."""
    data = path.read_bytes() if data is None else data
    before = path.stat().st_mtime_ns
    path.unlink()
    path.write_bytes(data)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_a_fresh_checkout_of_the_same_files_finds_the_earlier_answers(project, monkeypatch):
    """A CI job that restores the plan cache has checked everything out again (every file has a new time):
    content decides while it is cheap to read, so the entries an earlier job wrote answer."""
    assert _answer(_cache(project))[1] == [1]
    for path in (project / "data").iterdir():
        _rewrite(path)
    assert _answer(_cache(project))[1] == []
    _rewrite(project / "data" / "train.jsonl", b'{"a": 2}\n')  # the same size, another content
    assert _answer(_cache(project))[1] == [1]
    monkeypatch.setattr(plan_cache_module, "CONTENT_BYTES", 5)  # past the bytes worth reading: size and time
    assert _answer(_cache(project))[1] == [1]
    _rewrite(project / "data" / "clip.wav")
    assert _answer(_cache(project))[1] == [1]


def test_a_package_is_stamped_by_its_sources_content(tmp_path, monkeypatch):
    (tmp_path / "acme_plugin").mkdir()
    source = tmp_path / "acme_plugin" / "__init__.py"
    source.write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = plan_cache_module.package_stamp("acme_plugin")
    _rewrite(source)
    assert plan_cache_module.package_stamp("acme_plugin") == before
    _rewrite(source, b"VALUE = 2\n")
    assert plan_cache_module.package_stamp("acme_plugin") != before
