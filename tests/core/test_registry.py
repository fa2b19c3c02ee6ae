"""The plugin registry: hooks documented and exercised, isolation of broken plugins, name conflicts."""

from __future__ import annotations

import inspect
import json
import re
import textwrap

import pytest

from ftrecipe import hookspec
from ftrecipe.registry import HOOKS, record_problems
from tests.conftest import install_fixture_plugin, run_cli


def test_every_hook_is_specified_documented_with_an_example():
    specs = {name for name, fn in inspect.getmembers(hookspec, inspect.isfunction) if name.startswith("ftrecipe_")}
    assert specs == set(HOOKS)
    for name in specs:
        doc = inspect.getdoc(getattr(hookspec, name)) or ""
        assert "Example::" in doc and "@hookimpl" in doc, f"{name} lacks a complete example"


@pytest.mark.parametrize("hook", HOOKS)
def test_each_hook_example_runs_and_returns_a_well_formed_record(hook):
    """The examples are the author's reference: they must work as written, against the public API only."""
    doc = inspect.getdoc(getattr(hookspec, hook))
    code = textwrap.dedent(doc.split("Example::", 1)[1])
    assert set(re.findall(r"^from (ftrecipe[\w.]*) import", code, re.MULTILINE)) == {"ftrecipe.plugin"}
    namespace: dict = {}
    exec(compile(code, f"<{hook} example>", "exec"), namespace)  # noqa: S102 - our own documentation
    records = namespace[hook]()
    for record in records if isinstance(records, list) else [records]:
        assert record.name and record_problems(record) == []


def test_example_plugin_implements_every_hook(example_registry):
    info = next(p for p in example_registry.plugins if p.name == "example")
    assert sorted(info.hooks) == sorted(HOOKS) and info.error is None
    assert "toy-regression" in example_registry.modalities
    assert ("toy-regression", "synthetic") in example_registry.dataset_formats
    assert ("toy-regression", "jitter") in example_registry.augmentations
    assert ("toy-regression", "mse") in example_registry.metrics
    assert {"fault", "record"} <= set(example_registry.callbacks)


def test_out_of_tree_plugin_is_listed(example_site):
    out = run_cli("plugins", "--format", "json", site=example_site)
    assert out.returncode == 0, out.stderr
    listing = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    example = listing["example"]
    assert example["distribution"] == "ftrecipe-example" and example["version"] == "0.3.0"
    assert example["builtin"] is False and example["modalities"] == ["toy-external", "toy-regression"]
    third_party = {name for name, p in listing.items() if not p["builtin"]}
    assert third_party == {"example", "image-classification", "object-detection"}  # ftrecipe-vision is its own distribution
    assert {listing[name]["distribution"] for name in third_party - {"example"}} == {"ftrecipe-vision"}
    text = run_cli("plugins", site=example_site)
    assert "ftrecipe-example" in text.stdout and "third-party" in text.stdout


def test_broken_plugins_are_reported_and_skipped_never_fatal(tmp_path, example_site):
    """An import error, a hook that raises, a misspelt hook name and a record that names a key no recipe
    has: each plugin is listed with what went wrong, and everything else keeps working."""
    site = install_fixture_plugin("broken_plugin", tmp_path / "site")
    env = {"PYTHONPATH": f"{site}:{example_site}"}
    out = run_cli("plugins", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    errors = {p["name"]: p["error"] for p in json.loads(out.stdout)["plugins"] if p["error"]}
    assert set(errors) == {"broken", "raises", "misnamed", "misdeclared"}
    assert "a_module_that_does_not_exist" in errors["broken"]
    assert errors["raises"] == "ftrecipe_metrics raised RuntimeError: the metric table is not ready"
    assert errors["misnamed"] == "registration failed: unknown hook 'ftrecipe_modalites' (did you mean 'ftrecipe_modalities'?)"
    assert "ignores names 'training.optimiser', which is no key of a recipe's shared sections" in errors["misdeclared"]
    text = run_cli("plugins", env=env)
    assert text.returncode == 0 and "unknown hook 'ftrecipe_modalites'" in text.stdout
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  modality: nothing\n  base: x\ndata:\n  format: synthetic\n")
    out = run_cli("validate", str(recipe), env=env)
    assert out.returncode == 2 and "plugin 'broken' failed to load" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    toy = tmp_path / "toy.yaml"
    toy.write_text("model:\n  modality: toy-regression\n  base: x\ndata:\n  format: synthetic\n")
    assert run_cli("validate", str(toy), env=env).returncode == 0  # the working plugins still work


def test_two_plugins_with_one_name_is_an_error_naming_both(tmp_path, example_site):
    site = install_fixture_plugin("clashing_plugin", tmp_path / "site")
    env = {"PYTHONPATH": f"{site}:{example_site}"}
    out = run_cli("plugins", "--format", "json", env=env)
    assert out.returncode == 2
    (conflict,) = json.loads(out.stdout)["conflicts"]
    assert "ftrecipe-example" in conflict and "ftrecipe-clash" in conflict and "toy-regression" in conflict
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  modality: toy-regression\n  base: x\ndata:\n  format: synthetic\n")
    out = run_cli("validate", str(recipe), env=env)
    assert out.returncode == 2 and "ftrecipe-clash" in out.stdout


def test_init_writes_a_valid_starter(tmp_path, example_site):
    target = tmp_path / "toy.yaml"
    out = run_cli("init", "toy-regression", "--output", str(target), site=example_site)
    assert out.returncode == 0 and target.exists()
    assert run_cli("validate", str(target), site=example_site).returncode == 0
    again = run_cli("init", "toy-regression", "--output", str(target), site=example_site)
    assert again.returncode == 2 and "exists" in again.stderr
    unknown = run_cli("init", "toy-regresion", site=example_site)
    assert unknown.returncode == 2 and "did you mean 'toy-regression'" in unknown.stderr
