"""bench/plan_speed.py's floor of a recipe's own library imports: recorded from the plan's process, imported alone."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("plan_speed", ROOT / "bench" / "plan_speed.py")
plan_speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plan_speed)


def test_the_recording_lists_what_the_ftrecipe_process_imported_in_order(tmp_path: Path):
    record = tmp_path / "validate.json"
    command = [sys.executable, "-m", "ftrecipe", "validate", "recipes/demo/llama.yaml"]
    done = subprocess.run(plan_speed.recorded(command, record), capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "recipes/demo/llama.yaml: ok (causal-lm)" in done.stdout
    entries = json.loads(record.read_text())
    names = [name for name, present in entries if present]
    assert names.index("ftrecipe") < names.index("ftrecipe.validation")
    assert "pydantic" in names
    assert plan_speed.library_modules(entries) == []  # validate imports no model library


def test_only_the_model_libraries_modules_are_imported_for_the_floor_and_left_out_ones_stay_out(tmp_path: Path):
    entries = [["json", True], ["ftrecipe.cli", True], ["rich.console", True], ["safetensors", True],
               ["safetensors.torch", True], ["torchvisionx", True], ["bitsandbytes", False], ["peft", True]]
    assert plan_speed.library_modules(entries) == [["safetensors", True], ["safetensors.torch", True],
                                                   ["bitsandbytes", False], ["peft", True]]
    modules = tmp_path / "modules.json"
    modules.write_text(json.dumps([["safetensors", False], ["json", True], ["safetensors", True]]))
    probe = plan_speed.IMPORTING + "\nprint(sys.modules['safetensors'], 'json' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe, str(modules)], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["None", "True"]  # a package the plan left out is not imported for its floor
    record = tmp_path / "plan.json"
    record.write_text(json.dumps([["rich", True], ["safetensors", True], ["no_such_library_module", True]]))
    assert plan_speed.libraries_alone(record, tmp_path, repeat=1) > 0
    assert json.loads((tmp_path / "plan.libraries.json").read_text()) == [["safetensors", True]]
