"""The freeze plan's LoRA path: by default PEFT wraps the whole model; a task whose ecosystem adds
adapters itself (Diffusers' ``add_adapter``) says how through ``ModelAnatomy.add_adapters``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ftrecipe.errors import RecipeRuntimeError
from ftrecipe.freeze import ModelAnatomy, apply_freeze_plan
from ftrecipe.sections import FreezeSection, HeadSection, LoraSettings, TrainingSection


def lora_recipe(**lora) -> SimpleNamespace:
    freeze = FreezeSection(strategy="lora", lora=LoraSettings(r=4, alpha=8, target_modules=["inner"], **lora))
    return SimpleNamespace(freeze=freeze, head=HeadSection(), training=TrainingSection(), model=SimpleNamespace(quantization=None))


class Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = torch.nn.Linear(4, 4)
        self.outer = torch.nn.Linear(4, 1)


def test_without_add_adapters_peft_wraps_the_model():
    from peft import PeftModel

    model, report = apply_freeze_plan(Toy(), lora_recipe(), ModelAnatomy(stacks={}, main_stack=None))
    assert isinstance(model, PeftModel) and report.strategy == "lora" and 0 < report.trainable < report.total


def test_add_adapters_receives_the_recipes_lora_config_and_its_model_is_kept():
    from peft import LoraConfig, inject_adapter_in_model

    seen = []

    def add(model, config):
        seen.append(config)
        model.requires_grad_(False)
        return inject_adapter_in_model(config, model)

    model, report = apply_freeze_plan(Toy(), lora_recipe(), ModelAnatomy(stacks={}, main_stack=None, add_adapters=add))
    (config,) = seen
    assert isinstance(config, LoraConfig) and config.r == 4 and config.lora_alpha == 8 and set(config.target_modules) == {"inner"}
    assert type(model) is Toy  # not wrapped: the task's own model, with adapters inside
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert report.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_a_value_error_from_add_adapters_is_located_at_the_target_modules():
    def add(model, config):
        raise ValueError("Target modules {'nothing'} not found in the base model")

    with pytest.raises(RecipeRuntimeError) as caught:
        apply_freeze_plan(Toy(), lora_recipe(), ModelAnatomy(stacks={}, main_stack=None, add_adapters=add))
    assert caught.value.path == ("freeze", "lora", "target_modules")
