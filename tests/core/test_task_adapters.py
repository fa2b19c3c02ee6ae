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


class Nested(torch.nn.Module):
    """Two blocks with a ``norm`` each, and a final ``norm``: the names a LLaMA's layer norms share."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.ModuleDict({"inner": torch.nn.Linear(4, 4), "norm": torch.nn.LayerNorm(4)})
                                          for _ in range(2))
        self.norm = torch.nn.LayerNorm(4)


def test_train_globs_beside_lora_train_only_the_modules_they_name():
    """``freeze.train: [blocks.1.norm.*]`` trains that norm in full, not every module named ``norm``."""
    recipe = lora_recipe()
    recipe.freeze.train = ["blocks.1.norm.*"]
    model, _ = apply_freeze_plan(Nested(), recipe, ModelAnatomy(stacks={}, main_stack=None))
    in_full = {n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n}
    assert in_full == {f"base_model.model.blocks.1.norm.modules_to_save.default.{p}" for p in ("weight", "bias")}


def test_a_module_peft_cannot_tell_from_its_namesakes_is_refused_at_the_train_key():
    recipe = lora_recipe()
    recipe.freeze.train = ["norm.*"]
    with pytest.raises(RecipeRuntimeError) as caught:
        apply_freeze_plan(Nested(), recipe, ModelAnatomy(stacks={}, main_stack=None))
    assert caught.value.path == ("freeze", "train") and "blocks.0.norm, blocks.1.norm" in str(caught.value)
