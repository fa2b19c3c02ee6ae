"""A causal LM over two CPU processes with FSDP and with DeepSpeed ZeRO-3 (gloo): full fine-tuning, LoRA
(with gradient checkpointing) and the merged save, and a text classifier, each saved whole in the format
Transformers and PEFT load, and equal to data-parallel training of the same data, seed and global batch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_ok
from tests.plugins.text.test_runs import sft_recipe, tiny_checkpoint, write_jsonl

pytestmark = pytest.mark.e2e

LORA = "  strategy: lora\n  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n"
TWO = ("--set", "hardware.devices=2")
FSDP = ("--set", "hardware.strategy=fsdp")
ZERO3 = ("--set", "hardware.strategy=deepspeed", "--set", "hardware.zero_stage=3")
DEMO = ROOT / "recipes" / "demo" / "llama.yaml"
SHORT = ("--set", "data.train_size=200", "--set", "data.eval_size=8", "--set", "training.max_steps=4",
         "--set", "training.batch_size=4", "--set", "hardware.accelerator=cpu", *TWO)
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="DeepSpeed is not installed (pip install 'ftrecipe[deepspeed]')")
TOLERANCE = 1e-5
"""FSDP reduce-scatters what DDP all-reduces: the same sums in another order, so float32 rounding differs."""


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def demo_ddp(tmp_path_factory) -> Path:
    """The LLaMA demo for a few steps on two data-parallel processes: what the sharded runs must equal."""
    out = tmp_path_factory.mktemp("ddp") / "run"
    run_ok(DEMO, out, *SHORT)
    return out


def lora_recipe(tmp: Path, base: Path, save: str) -> Path:
    recipe = sft_recipe(tmp, base, LORA, save=save)
    recipe.write_text(recipe.read_text().replace("training:\n", "training:\n  gradient_checkpointing: true\n", 1))
    return recipe


@pytest.fixture(scope="module")
def lora_ddp(tmp_path_factory, llama_dir) -> Path:
    """LoRA on two data-parallel processes: the adapter the sharded runs must equal."""
    folder = tmp_path_factory.mktemp("lora-ddp")
    run_ok(lora_recipe(folder, llama_dir, "adapter"), folder / "run", *TWO)
    return folder / "run"


def assert_same_tensors(a: dict, b: dict, atol: float) -> None:
    import torch

    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f"largest difference {worst}"
    assert all(torch.isfinite(v).all() for v in a.values())


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero3", marks=needs_deepspeed)])
def test_the_demo_fully_fine_tuned_is_saved_whole_and_matches_data_parallel(tmp_path, demo_ddp, strategy):
    """recipes/demo/llama.yaml for a few steps: the FSDP (or ZeRO-3) model loads in Transformers with no
    missing or unexpected weights, and equals the DDP one."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    sharded = run_ok(DEMO, tmp_path / strategy, *SHORT, *(FSDP if strategy == "fsdp" else ZERO3))
    assert sharded["world_size"] == 2 and sharded["eval_after"]["eval_loss"] < sharded["eval_before"]["eval_loss"]
    _, info = AutoModelForCausalLM.from_pretrained(tmp_path / strategy / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert_same_tensors(load_file(tmp_path / strategy / "model" / "model.safetensors"),
                        load_file(demo_ddp / "model" / "model.safetensors"), TOLERANCE)


def test_lora_adapter_and_merged_save_under_fsdp(tmp_path, llama_dir, lora_ddp):
    """The adapter matches data-parallel training and loads with PEFT; the merged save is that adapter
    folded into the base (loads in Transformers with nothing missing)."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    run_ok(lora_recipe(tmp_path, llama_dir, "adapter"), tmp_path / "fsdp", *TWO, *FSDP)
    run_ok(lora_recipe(tmp_path, llama_dir, "merged"), tmp_path / "merged", *TWO, *FSDP)
    adapter = tmp_path / "fsdp" / "model"
    assert_same_tensors(load_file(adapter / "adapter_model.safetensors"),
                        load_file(lora_ddp / "model" / "adapter_model.safetensors"), TOLERANCE)
    folded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(llama_dir), adapter).merge_and_unload()
    merged, info = AutoModelForCausalLM.from_pretrained(tmp_path / "merged" / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert_same_tensors(merged.state_dict(), folded.state_dict(), 1e-6)
    base = AutoModelForCausalLM.from_pretrained(llama_dir).state_dict()
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, base[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)


@needs_deepspeed
def test_lora_adapter_under_deepspeed_zero3(tmp_path, llama_dir, lora_ddp):
    """ZeRO-3 partitions the frozen base and the adapter alike: the adapter gathered from both processes
    loads with PEFT and matches data-parallel training."""
    from safetensors.torch import load_file

    run_ok(lora_recipe(tmp_path, llama_dir, "adapter"), tmp_path / "zero3", *TWO, *ZERO3)
    assert_same_tensors(load_file(tmp_path / "zero3" / "model" / "adapter_model.safetensors"),
                        load_file(lora_ddp / "model" / "adapter_model.safetensors"), TOLERANCE)


@pytest.fixture(scope="module")
def classifier_recipe(tmp_path_factory) -> Path:
    """Full fine-tuning of a tiny BERT with a new two-label head (dropout on: the processes' seeds differ)."""
    folder = tmp_path_factory.mktemp("classifier")
    base = tiny_checkpoint(folder / "bert", "bert")
    rows = [{"text": t, "label": l} for t, l in [("great movie", "pos"), ("awful service", "neg"), ("it was fine", "pos")] * 12]
    write_jsonl(folder / "train.jsonl", rows)
    recipe = folder / "classify.yaml"
    recipe.write_text(
        f"model:\n  modality: text-classification\n  base: {base}\n"
        "freeze:\n  strategy: full\n"
        "head:\n  mode: replace\n  labels: [neg, pos]\n"
        "data:\n  format: jsonl\n  train: train.jsonl\n  max_length: 16\n"
        "training:\n  max_steps: 4\n  batch_size: 4\n  learning_rate: 1.0e-3\n"
        "hardware:\n  accelerator: cpu\n  precision: fp32\n  devices: 2\n")
    return recipe


@pytest.fixture(scope="module")
def classifier_ddp(tmp_path_factory, classifier_recipe) -> Path:
    out = tmp_path_factory.mktemp("classifier-ddp") / "run"
    run_ok(classifier_recipe, out)
    return out


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero3", marks=needs_deepspeed)])
def test_a_text_classifier_is_saved_whole_and_matches_data_parallel(tmp_path, classifier_recipe, classifier_ddp, strategy):
    """BERT with a new head on two processes: the FSDP (or ZeRO-3) model loads in
    AutoModelForSequenceClassification with nothing missing, keeps the labels, and equals DDP's."""
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification

    summary = run_ok(classifier_recipe, tmp_path / strategy, *(FSDP if strategy == "fsdp" else ZERO3))
    assert summary["world_size"] == 2
    model, info = AutoModelForSequenceClassification.from_pretrained(tmp_path / strategy / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert_same_tensors(load_file(tmp_path / strategy / "model" / "model.safetensors"),
                        load_file(classifier_ddp / "model" / "model.safetensors"), TOLERANCE)
