"""The runner's own speed switches (issue 13): compilation of the repeated blocks in place, the paged
optimizer, and what a machine that cannot honour a switch says."""

from __future__ import annotations

import pytest
import torch

from ftrecipe.errors import RecipeRuntimeError
from ftrecipe.runner import preflight, speed
from ftrecipe.runner.optim import build_optimizer
from ftrecipe.sections import HardwareSection, TrainingSection


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x)) + x


class Stack(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 8)
        self.layers = torch.nn.ModuleList(Block() for _ in range(3))
        self.mixed = torch.nn.ModuleList([torch.nn.Linear(8, 8), torch.nn.ReLU()])  # not a stack of one class
        self.head = torch.nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)


def test_compiling_the_blocks_keeps_every_weight_name_and_the_result():
    torch.manual_seed(0)
    model = Stack()
    names = list(model.state_dict())
    x = torch.randn(5, 4)
    expected = model(x)
    assert speed.compile_blocks(model) == 3
    assert list(model.state_dict()) == names  # checkpoints, adapters and saved models keep their keys
    assert all(getattr(layer, "_compiled_call_impl", None) is not None for layer in model.layers)
    assert getattr(model.mixed[0], "_compiled_call_impl", None) is None
    torch.testing.assert_close(model(x), expected)
    with speed.eager(True):  # evaluation: no compilation, same numbers
        torch.testing.assert_close(model(x), expected)


def test_a_model_without_layer_stacks_is_refused_naming_the_key():
    with pytest.raises(RecipeRuntimeError) as error:
        speed.compile_blocks(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert error.value.path == ("training", "compile")


def recipe_with(hardware: dict | None = None, **training):
    from types import SimpleNamespace

    return SimpleNamespace(training=TrainingSection(**training), hardware=HardwareSection(**(hardware or {})))


def test_switches_the_device_cannot_honour_are_refused(monkeypatch):
    with pytest.raises(RecipeRuntimeError) as error:
        preflight.check_hardware(recipe_with(optimizer="paged-adamw-8bit"), "cpu")
    assert error.value.path == ("training", "optimizer") and "CUDA" in error.value.message
    preflight.check_hardware(recipe_with(optimizer="paged-adamw-8bit"), "cuda")
    preflight.check_hardware(recipe_with(compile=True), "cpu")  # this machine has a C++ compiler
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    with pytest.raises(RecipeRuntimeError) as error:
        preflight.check_hardware(recipe_with(compile=True), "cpu")
    assert error.value.path == ("training", "compile") and "C++ compiler" in error.value.message
    preflight.check_hardware(recipe_with(compile=True), "cuda")  # Triton, not a host compiler
    with pytest.raises(RecipeRuntimeError):
        preflight.check_hardware(recipe_with(compile=True), "mps")


@pytest.mark.parametrize("strategy", ["deepspeed", "fsdp"])
def test_sharding_strategies_are_refused_where_they_cannot_run_not_replaced_by_ddp(strategy):
    """Neither DeepSpeed nor FSDP has an MPS backend; both run on CPU processes (gloo)."""
    with pytest.raises(RecipeRuntimeError) as error:
        preflight.check_hardware(recipe_with({"strategy": strategy}), "mps")
    assert error.value.path == ("hardware", "strategy") and "ddp" in error.value.message
    preflight.check_hardware(recipe_with({"strategy": strategy}), "cpu")


def test_deepspeed_missing_is_refused_with_the_install_command(monkeypatch):
    real = preflight.importlib.util.find_spec
    monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda name: None if name == "deepspeed" else real(name))
    with pytest.raises(RecipeRuntimeError) as error:
        preflight.check_hardware(recipe_with({"strategy": "deepspeed"}), "cuda")
    assert error.value.path == ("hardware", "strategy") and "pip install 'ftrecipe[deepspeed]'" in error.value.message


def test_paged_adamw_8bit_is_bitsandbytes_paged_optimizer():
    bnb = pytest.importorskip("bitsandbytes")
    model = torch.nn.Linear(64, 64)
    optimizer = build_optimizer(model, TrainingSection(optimizer="paged-adamw-8bit", learning_rate=1e-3))
    assert type(optimizer) is bnb.optim.PagedAdamW8bit
    assert type(build_optimizer(model, TrainingSection(optimizer="adamw-8bit"))) is bnb.optim.AdamW8bit


def test_the_log_line_names_every_switch():
    line = speed.describe({"compile": "on (2 blocks)", "optimizer": "adamw", "loss": "chunked", "kernels": "none", "x": False})
    assert line == "compile on (2 blocks), optimizer adamw, loss chunked, kernels none, x off"
