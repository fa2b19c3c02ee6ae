"""A packed causal LM interrupted and resumed, with and without the CPU's speed switches (a file of its own, so
that the suite's workers run it beside the other text runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import metric_records, run_whole_and_resumed, same_safetensors


SPEED_SWITCHES = "  loss: chunked\n  compile: true\n"  # the speed switches a CPU can honour


def packed_recipe(folder: Path, switches: str) -> Path:
    recipe = folder / "lm.yaml"
    recipe.write_text(
        "model:\n  modality: causal-lm\n  base: llama\n  init: scratch\n"
        "  config: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2}\n"
        "data:\n  format: synthetic\n  train_size: 48\n  eval_size: 4\n  max_length: 256\n  packing: true\n"
        "training:\n  max_steps: 12\n  batch_size: 4\n  learning_rate: 3.0e-3\n  log_every: 1\n" + switches +
        "hardware:\n  accelerator: cpu\n"
        "evaluation:\n  metrics: [exact_match]\n  generation: {max_new_tokens: 4}\n"
        "callbacks: [fault]\n"
    )
    return recipe


@pytest.fixture(scope="module")
def plain_packed_run(tmp_path_factory, example_site) -> Path:
    """The packed tiny LLaMA trained uninterrupted without speed switches."""
    recipe = packed_recipe(tmp_path_factory.mktemp("packed-plain"), "")
    return run_whole_and_resumed(recipe, recipe.parent, example_site, stop_at=None)[0]


@pytest.mark.e2e
@pytest.mark.parametrize("switches", ["", SPEED_SWITCHES], ids=["plain", "chunked-loss-compiled"])
def test_an_interrupted_packed_run_resumes_exactly(tmp_path, example_site, plain_packed_run, switches):
    """A causal LM with packed sequences, stopped by Ctrl-C in its first epoch and resumed: the weights
    and every metric record of an uninterrupted run, across the epoch boundary (with the CPU's speed
    switches on too: the compiled layers keep their weight names, so checkpoints load as they are). The
    speed switches change how the loss is computed, not what is learned: the same losses, step by step,
    as without them."""
    recipe = packed_recipe(tmp_path, switches)
    whole, cut = run_whole_and_resumed(recipe, tmp_path, example_site, stop_at=3,
                                       whole=None if switches else plain_packed_run)
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["data"]["packing"] and summary["data"]["sequences"] < summary["data"]["train_examples"]
    assert summary["epochs_completed"] >= 1  # the 12 steps cross an epoch boundary
    assert same_safetensors(whole / "model", cut / "model")
    keys = ("step", "kind", "loss", "lr", "epoch", "exact_match", "eval_loss")
    assert metric_records(cut, keys) == metric_records(whole, keys)
    if switches:
        speed = json.loads((whole / "run.json").read_text())["speed"]
        assert speed == {"loss": "chunked", "compile": "on (2 blocks)", "optimizer": "adamw", "attention": "sdpa", "kernels": "none"}
        losses = [r["loss"] for r in metric_records(whole, keys) if r["kind"] == "train"]
        plain = [r["loss"] for r in metric_records(plain_packed_run, keys) if r["kind"] == "train"]
        assert len(losses) == len(plain) == 12 and losses == pytest.approx(plain, rel=1e-3)
