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
from collections.abc import Iterator
from typing import Any

import torch

from ftrecipe.errors import RecipeRuntimeError


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
