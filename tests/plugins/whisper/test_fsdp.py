"""The Whisper demo over two CPU processes with FSDP (gloo): saved whole, loaded by Transformers with
nothing missing, equal to data-parallel training of the same data, seed and global batch."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT, run_ok

pytestmark = pytest.mark.e2e


def test_the_demo_under_fsdp_is_saved_whole_and_matches_data_parallel(tmp_path):
    from safetensors.torch import load_file
    from transformers import WhisperForConditionalGeneration

    demo = ROOT / "recipes" / "demo" / "whisper.yaml"
    short = ("--set", "data.train_size=48", "--set", "data.eval_size=4", "--set", "training.max_steps=3",
             "--set", "training.batch_size=4", "--set", "hardware.accelerator=cpu", "--set", "hardware.devices=2",
             "--set", "evaluation.generation.max_new_tokens=4")
    fsdp = run_ok(demo, tmp_path / "fsdp", *short, "--set", "hardware.strategy=fsdp")
    run_ok(demo, tmp_path / "ddp", *short)
    assert fsdp["world_size"] == 2 and fsdp["eval_after"] is not None
    _, info = WhisperForConditionalGeneration.from_pretrained(tmp_path / "fsdp" / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    a = load_file(tmp_path / "fsdp" / "model" / "model.safetensors")
    b = load_file(tmp_path / "ddp" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-5, f"largest difference {worst}"  # the same sums reduced in another order
