"""A causal LM over two CPU processes with FSDP (gloo): full fine-tuning, LoRA (with gradient
checkpointing) and the merged save, each saved whole in the format Transformers and PEFT load, and
equal to data-parallel training of the same data, seed and global batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, run_ok
from tests.plugins.text.test_runs import sft_recipe, tiny_checkpoint

pytestmark = pytest.mark.e2e

LORA = "  strategy: lora\n  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n"
TWO = ("--set", "hardware.devices=2")
FSDP = ("--set", "hardware.strategy=fsdp")
TOLERANCE = 1e-5
"""FSDP reduce-scatters what DDP all-reduces: the same sums in another order, so float32 rounding differs."""


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("llama"), "llama")


def lora_recipe(tmp: Path, base: Path, save: str) -> Path:
    recipe = sft_recipe(tmp, base, LORA, save=save)
    recipe.write_text(recipe.read_text().replace("training:\n", "training:\n  gradient_checkpointing: true\n", 1))
    return recipe


def assert_same_tensors(a: dict, b: dict, atol: float) -> None:
    import torch

    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f"largest difference {worst}"
    assert all(torch.isfinite(v).all() for v in a.values())


def test_the_demo_fully_fine_tuned_is_saved_whole_and_matches_data_parallel(tmp_path):
    """recipes/demo/llama.yaml for a few steps: the FSDP model loads in Transformers with no missing or
    unexpected weights, and equals the DDP one."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    demo = ROOT / "recipes" / "demo" / "llama.yaml"
    short = ("--set", "data.train_size=200", "--set", "data.eval_size=8", "--set", "training.max_steps=4",
             "--set", "training.batch_size=4", "--set", "hardware.accelerator=cpu", *TWO)
    fsdp = run_ok(demo, tmp_path / "fsdp", *short, *FSDP)
    run_ok(demo, tmp_path / "ddp", *short)
    assert fsdp["world_size"] == 2 and fsdp["eval_after"]["eval_loss"] < fsdp["eval_before"]["eval_loss"]
    _, info = AutoModelForCausalLM.from_pretrained(tmp_path / "fsdp" / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert_same_tensors(load_file(tmp_path / "fsdp" / "model" / "model.safetensors"),
                        load_file(tmp_path / "ddp" / "model" / "model.safetensors"), TOLERANCE)


def test_lora_adapter_and_merged_save_under_fsdp(tmp_path, llama_dir):
    """The adapter matches data-parallel training and loads with PEFT; the merged save is that adapter
    folded into the base (loads in Transformers with nothing missing)."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run_ok(lora_recipe(tmp_path, llama_dir, "adapter"), tmp_path / "fsdp", *TWO, *FSDP)
    run_ok(lora_recipe(tmp_path, llama_dir, "adapter"), tmp_path / "ddp", *TWO)
    run_ok(lora_recipe(tmp_path, llama_dir, "merged"), tmp_path / "merged", *TWO, *FSDP)
    adapter = tmp_path / "fsdp" / "model"
    assert_same_tensors(load_file(adapter / "adapter_model.safetensors"),
                        load_file(tmp_path / "ddp" / "model" / "adapter_model.safetensors"), TOLERANCE)
    folded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(llama_dir), adapter).merge_and_unload()
    merged, info = AutoModelForCausalLM.from_pretrained(tmp_path / "merged" / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert_same_tensors(merged.state_dict(), folded.state_dict(), 1e-6)
    base = AutoModelForCausalLM.from_pretrained(llama_dir).state_dict()
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, base[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
