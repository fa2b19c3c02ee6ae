"""`switch_checkpointing`: the runner's `training.gradient_checkpointing` and the plan's reset reach a model
by whichever name its library gives the switch (Transformers 5.25 renamed `gradient_checkpointing_enable` to
`activation_checkpointing_enable`; the old name warns and goes in v6), never silently nothing."""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

from ftrecipe.plugin import switch_checkpointing


def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(config)


def checkpointed_layers(model: torch.nn.Module) -> list[bool]:
    return [layer.gradient_checkpointing for layer in model.modules() if type(layer).__name__ == "LlamaDecoderLayer"]


@pytest.mark.parametrize("wrapped", [False, True], ids=["transformers", "peft"])
def test_a_transformers_model_is_switched_on_non_reentrant_and_off_without_a_warning(wrapped):
    model = tiny_llama()
    if wrapped:  # the runner switches the freeze plan's result: a PeftModel for LoRA
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecated name would raise here
        assert switch_checkpointing(model, True)
        assert checkpointed_layers(model) == [True, True]
        layer = next(m for m in model.modules() if type(m).__name__ == "LlamaDecoderLayer")
        function = layer._gradient_checkpointing_func
        assert isinstance(function, functools.partial) and function.keywords == {"use_reentrant": False}
        assert switch_checkpointing(model, False)
        assert checkpointed_layers(model) == [False, False]


class OwnSwitch(torch.nn.Module):
    """A plugin's own model with the older pair only (as DreamBooth's UNet + text encoder wrapper has)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, object]] = []

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None) -> None:
        self.calls.append(("on", gradient_checkpointing_kwargs))

    def gradient_checkpointing_disable(self) -> None:
        self.calls.append(("off", None))


def test_a_plugins_own_switch_is_called_and_a_model_without_one_is_said():
    model = OwnSwitch()
    assert switch_checkpointing(model, True) and switch_checkpointing(model, False)
    assert model.calls == [("on", {"use_reentrant": False}), ("off", None)]
    assert switch_checkpointing(torch.nn.Linear(2, 2), True) is False
