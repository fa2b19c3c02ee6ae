"""The fast commands stay torch-free; the JSON Schema is committed and must not drift."""

from __future__ import annotations

import subprocess
import sys

from ftrecipe.schema import json_schema_text
from tests.conftest import ROOT, run_cli

HEAVY = ("torch", "transformers", "diffusers", "ultralytics", "peft", "accelerate")


def imported_modules(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ftrecipe", *args], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"ftrecipe {' '.join(args)} exited {out.returncode}: {out.stdout[-500:]}"
    return {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "import time:" in line}


def test_light_commands_never_import_heavy_libraries():
    recipes = [str(p) for p in sorted((ROOT / "recipes").rglob("*.yaml")) if "data" not in p.relative_to(ROOT / "recipes").parts]
    assert len(recipes) >= 7
    for args in (["--help"], ["validate", *recipes], ["validate", "--untrusted", *recipes], ["plugins"], ["schema"],
                 ["validate", "--help"]):
        modules = imported_modules(*args)
        assert "ftrecipe" in modules  # the command ran and the measurement saw it
        assert not modules & set(HEAVY), f"ftrecipe {' '.join(args)} imported {sorted(modules & set(HEAVY))}"


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("ftrecipe ")
    assert run_cli("--help").returncode == 0
    assert run_cli().returncode == 2


def test_committed_schema_matches_installed_plugins():
    committed = (ROOT / "schemas" / "recipe.schema.json").read_text()
    assert committed == json_schema_text(), "schemas/recipe.schema.json drifted: run `ftrecipe schema --output schemas/recipe.schema.json`"


def test_schema_command_prints_the_schema():
    out = run_cli("schema")
    assert out.returncode == 0 and '"title": "ftrecipe recipe"' in out.stdout
