"""`ftrecipe run` finds every mistake that needs no model before it imports torch (issue 24): a missing base
model or data file, an occupied output folder, a switch this machine cannot honour."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ftrecipe.runner.preflight import GPU_DEVICE_FILES
from tests.conftest import ROOT
from tests.core.test_cli import HEAVY

RECIPES = ROOT / "recipes"
NO_GPU = sys.platform.startswith("linux") and not any(os.path.exists(p) for p in GPU_DEVICE_FILES)


def run_measured(*args: str, cwd=ROOT) -> tuple[subprocess.CompletedProcess, str, set[str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftrecipe", "run", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "import time:" in line}
    said = "\n".join(line for line in done.stderr.splitlines() if "import time:" not in line)
    return done, said, imported


@pytest.mark.parametrize(("recipe", "overrides", "code", "expected"), [
    ("whisper-callcenter.yaml", [], 2, "model.base: 'openai/whisper-small' is not a local directory and not in the Hugging Face cache"),
    ("sd-dreambooth-dog.yaml", [], 2, "model.base: 'stable-diffusion-v1-5/stable-diffusion-v1-5' is not a local directory"),
    ("yolo-finetune.yaml", [], 2, "model.base: 'yolo11n.pt' is not a local file"),
    ("bert-tweet-sentiment.yaml", ["data.train=data/nope.csv"], 2, "data.train: no such file or directory"),
    ("demo/llama.yaml", ["hardware.accelerator=cpu", "training.optimizer=paged-adamw-8bit"], 2,
     "training.optimizer: paged-adamw-8bit pages its state through CUDA memory"),
], ids=["whisper-model", "diffusers-pipeline", "yolo-weights", "data-file", "switch"])
def test_a_mistake_found_without_a_model_is_said_before_torch_is_imported(tmp_path, recipe, overrides, code, expected):
    args = [a for o in overrides for a in ("--set", o)]
    done, said, imported = run_measured(str(RECIPES / recipe), *args, "--output", str(tmp_path / "run"))
    assert done.returncode == code, said
    assert expected in said and "Traceback" not in said
    assert said.startswith(f"{RECIPES / recipe}:") or said.startswith("--set")  # located: file:line:col or the override
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert not (tmp_path / "run").exists()  # nothing written


def test_an_occupied_output_folder_and_a_missing_gpu_are_said_before_torch(tmp_path):
    output = tmp_path / "run"
    output.mkdir()
    (output / "run.json").write_text("{}")
    done, said, imported = run_measured(str(RECIPES / "demo" / "llama.yaml"), "--output", str(output))
    assert done.returncode == 1 and "already holds a run; pass --resume" in said
    assert not imported & set(HEAVY)
    if NO_GPU:  # where a GPU device file exists only torch can tell
        done, said, imported = run_measured(str(RECIPES / "demo" / "llama.yaml"), "--set", "hardware.accelerator=cuda",
                                            "--output", str(tmp_path / "other"))
        assert done.returncode == 1 and "hardware.accelerator is cuda but no CUDA device is available" in said
        assert not imported & set(HEAVY)
