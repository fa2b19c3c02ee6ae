"""The speed switches every common-loop modality shares, and the account of all of a run's switches.

``training.compile`` compiles each repeated block (a transformer's layers) in place, with
``nn.Module.compile``: the module tree, and so every state dict, checkpoint and saved adapter, keeps its
names (Accelerate's whole-model and regional compilation wrap the modules and rename their weights), and
one compiled layer class serves every layer of the stack. The blocks are compiled for dynamic shapes from
the first step: batches change length from step to step, and one set of kernels for every length is what
keeps a resumed run bit-identical to an uninterrupted one (it would otherwise meet the lengths in another
order and specialise other kernels; tested). Evaluation and generation run eagerly: their shapes change
at every token, and a compile per shape would cost more than it saves.

Each switch is off by default, and a switch this run cannot honour is refused with a located error
(exit 2) naming its key, never dropped quietly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
from collections.abc import Iterator
from typing import Any

import torch

from ftrecipe.errors import RecipeRuntimeError
from ftrecipe.sections import BITSANDBYTES_OPTIMIZERS, RecipeBase

CXX_COMPILERS = ("c++", "g++", "clang++")


def check_hardware(recipe: RecipeBase, device_type: str) -> None:
    """Refuse what this device cannot honour (the core switches, the distributed strategy) before any
    process is started or data read."""
    training, strategy = recipe.training, recipe.hardware.strategy
    if strategy == "deepspeed" and device_type != "cuda":
        raise RecipeRuntimeError(("hardware", "strategy"), f"DeepSpeed shards over CUDA devices, but this run is on "
                                                           f"{device_type}; use fsdp or ddp")
    if strategy == "fsdp" and device_type == "mps":
        raise RecipeRuntimeError(("hardware", "strategy"), "FSDP has no MPS backend; use ddp")
    if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise RecipeRuntimeError(("hardware", "strategy"), "DeepSpeed is not installed: pip install deepspeed "
                                                           "(it builds from source against your torch; ftrecipe has not "
                                                           "tested it, see the README), or use strategy: fsdp")
    if training.optimizer in BITSANDBYTES_OPTIMIZERS and importlib.util.find_spec("bitsandbytes") is None:
        raise RecipeRuntimeError(("training", "optimizer"),
                                 f"{training.optimizer} needs bitsandbytes: pip install 'ftrecipe[gpu]'")
    if training.optimizer == "paged-adamw-8bit" and device_type != "cuda":
        raise RecipeRuntimeError(("training", "optimizer"),
                                 f"paged-adamw-8bit pages its state through CUDA memory, but this run is on {device_type}; "
                                 "use adamw (or adamw-8bit)")
    if training.compile:
        if device_type == "mps":
            raise RecipeRuntimeError(("training", "compile"), "torch.compile has no training backend on MPS; set compile: false")
        if device_type == "cpu" and not any(shutil.which(name) for name in CXX_COMPILERS):
            raise RecipeRuntimeError(("training", "compile"),
                                     "torch.compile on the CPU builds C++ kernels, and no C++ compiler (c++, g++, clang++) "
                                     "is on the PATH; install one or set compile: false")


def repeated_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The members of every module list whose members are all of one class (a model's layer stacks)."""
    blocks: list[torch.nn.Module] = []
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and len({type(m) for m in module}) == 1:
            blocks.extend(module)
    return blocks


def compile_blocks(model: torch.nn.Module) -> int:
    """Compile every repeated block in place; returns how many. A model without layer stacks is
    refused: compiling it whole would rename its weights (see the module docstring)."""
    blocks = repeated_blocks(model)
    if not blocks:
        raise RecipeRuntimeError(("training", "compile"), f"{type(model).__name__} has no repeated layers to compile; "
                                                          "set compile: false")
    for block in blocks:
        block.compile(dynamic=True)
    return len(blocks)


@contextlib.contextmanager
def eager(compiled: bool) -> Iterator[None]:
    """Run compiled blocks eagerly inside (evaluation, generation); a no-op when nothing is compiled."""
    if not compiled:
        yield
        return
    with torch.compiler.set_stance("force_eager"):
        yield


def describe(switches: dict[str, Any]) -> str:
    """One line for the run log: ``compile on (12 blocks), optimizer adamw, loss chunked, ...``."""
    return ", ".join(f"{name} {_word(value)}" for name, value in switches.items())


def _word(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)
