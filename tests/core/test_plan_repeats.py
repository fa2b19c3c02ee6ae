"""The plan traces a stack of identical layers once (ftrecipe.plan.repeats): every number the trace gives is
the full trace's, and layers that differ (by setting, trainability or nesting) are traced as before."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ftrecipe.plan.measure import trace_forward
from tests.core.test_plan_memory import _TinyTask


def counted_mlps(model: torch.nn.Module) -> list[int]:
    """A counter of the layers' MLP forwards (what a replayed layer does not run)."""
    calls = [0]
    for layer in model.model.layers:
        layer.mlp.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def both_traces(model: torch.nn.Module, units: list[str], batch_size: int = 2) -> tuple[dict, dict, int, int]:
    calls = counted_mlps(model)
    task = _TinyTask(64)
    full = dataclasses.asdict(trace_forward(task, model, batch_size, units, ["lm_head"], replay=False))
    full_calls, calls[0] = calls[0], 0
    replayed = dataclasses.asdict(trace_forward(task, model, batch_size, units, ["lm_head"]))
    return full, replayed, full_calls, calls[0]


def llama(layers: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300, attn_implementation="sdpa")
    with torch.device("meta"):
        return LlamaForCausalLM(config).train()


def test_identical_layers_are_traced_three_times_and_give_the_full_traces_numbers():
    model = llama(8)
    full, replayed, full_calls, replayed_calls = both_traces(model, [f"model.layers.{i}" for i in range(8)])
    assert replayed == full
    assert (full_calls, replayed_calls) == (8, 3)
    assert len(full["units"]) == 8 and full["flops"] > 0


def test_frozen_lower_layers_are_told_from_trained_upper_ones():
    """Transfer learning: layers 0-4 frozen, 5-7 trained; the frozen ones save nothing of their own."""
    model = llama(8)
    for i, layer in enumerate(model.model.layers):
        layer.requires_grad_(i >= 5)
    model.model.embed_tokens.requires_grad_(False)
    full, replayed, _, replayed_calls = both_traces(model, [f"model.layers.{i}" for i in range(8)])
    assert replayed == full
    assert set(full["units"]) >= {"model.layers.5", "model.layers.6", "model.layers.7"}
    assert replayed_calls < 8  # the frozen run of five is replayed after its first three


@pytest.mark.parametrize("pattern", ["alternating", "full then sliding"])
def test_layers_with_different_attention_kinds_are_traced_by_kind(pattern: str):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    kinds = (["sliding_attention", "full_attention"] * 4 if pattern == "alternating"
             else ["full_attention"] * 4 + ["sliding_attention"] * 4)
    config = Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=8, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=300, use_sliding_window=True, sliding_window=16,
                         layer_types=kinds, attn_implementation="sdpa")
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config).train()
    full, replayed, _, replayed_calls = both_traces(model, [f"model.layers.{i}" for i in range(8)])
    assert replayed == full
    assert replayed_calls == 8 - 2  # each kind: four layers, the fourth replayed


def test_units_inside_other_units_are_all_traced():
    model = llama(4)
    units = [f"model.layers.{i}" for i in range(4)] + [f"model.layers.{i}.mlp" for i in range(4)]
    full, replayed, full_calls, replayed_calls = both_traces(model, units, batch_size=1)
    assert replayed == full and replayed_calls == full_calls == 4
