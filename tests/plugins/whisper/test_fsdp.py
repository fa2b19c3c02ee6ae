"""The Whisper demo over two CPU processes with FSDP and with DeepSpeed ZeRO-3 (gloo): saved whole, loaded
by Transformers with nothing missing, equal to data-parallel training of the same data, seed and global batch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_ok

pytestmark = pytest.mark.e2e

DEMO = ROOT / "recipes" / "demo" / "whisper.yaml"
SHORT = ("--set", "data.train_size=48", "--set", "data.eval_size=4", "--set", "training.max_steps=3",
         "--set", "training.batch_size=4", "--set", "hardware.accelerator=cpu", "--set", "hardware.devices=2",
         "--set", "evaluation.generation.max_new_tokens=4")
STRATEGIES = {"fsdp": ("--set", "hardware.strategy=fsdp"),
              "zero3": ("--set", "hardware.strategy=deepspeed", "--set", "hardware.zero_stage=3")}
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="DeepSpeed is not installed (pip install 'ftrecipe[deepspeed]')")


@pytest.fixture(scope="module")
def demo_ddp(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    run_ok(DEMO, out, *SHORT)
    return out


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero3", marks=needs_deepspeed)])
def test_the_demo_sharded_is_saved_whole_and_matches_data_parallel(tmp_path, demo_ddp, strategy):
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration

    sharded = run_ok(DEMO, tmp_path / strategy, *SHORT, *STRATEGIES[strategy])
    assert sharded["world_size"] == 2 and sharded["eval_after"] is not None
    _, info = WhisperForConditionalGeneration.from_pretrained(tmp_path / strategy / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    a = load_file(tmp_path / strategy / "model" / "model.safetensors")
    b = load_file(demo_ddp / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-5, f"largest difference {worst}"  # the same sums reduced in another order
