"""Applies the recipe's freeze plan to a model: requires_grad flags, or PEFT LoRA adapters.

One grammar for every modality: globs over parameter names, layer ranges over the model's layer
stacks (found by :func:`discover_anatomy` or given by the task), the head, and LoRA settings handed
to PEFT. A glob or stack that matches nothing is a user mistake, reported at its recipe key.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ftrecipe.errors import RecipeRuntimeError

if TYPE_CHECKING:
    import torch

    from ftrecipe.sections import RecipeBase

_STACK_NAMES = ("layers", "layer", "h", "blocks", "block")


@dataclass
class ModelAnatomy:
    """Where a model's layer stacks and head are, so one freeze grammar fits every architecture.

    :meth:`ftrecipe.plugin.ModalityTask.anatomy` returns it; the default finds it by module names
    (:func:`discover_anatomy`), and a task corrects or completes it for its architecture.
    """

    stacks: dict[str, list[str]]
    """Stack name -> module names of its layers, input side first (e.g. ``decoder``)."""
    main_stack: str | None
    """The stack ``freeze_layers`` and ``unfreeze_top`` count in when the recipe names none."""
    head: list[str] = field(default_factory=list)
    """Module names of the output head (trained by ``transfer``, saved in full by LoRA)."""
    peft_task_type: str | None = None
    """PEFT ``TaskType`` name (``CAUSAL_LM``, ``SEQ_CLS``, ...) or None for a plain ``PeftModel``."""
    add_adapters: Callable[[Any, Any], Any] | None = None
    """How LoRA adapters join this model: ``add_adapters(model, lora_config) -> model``, called by the
    freeze plan with the ``peft.LoraConfig`` it built from the recipe. None: ``peft.get_peft_model``
    wraps the whole model. A model whose ecosystem adds adapters itself (Diffusers'
    ``unet.add_adapter``, whose LoRA files other tools load) sets it; it freezes the base and leaves
    exactly the adapters' parameters trainable. The config's ``modules_to_save`` holds the full module
    paths to train in full (a new head, the modules of ``freeze.train``): pass them through
    :func:`peft_modules_to_save` before handing the config to PEFT."""


@dataclass
class FreezeReport:
    """Parameter accounting after the plan is applied (shown before training, kept in summary.json)."""

    strategy: str
    trainable: int
    total: int
    frozen_stacks: dict[str, list[int]] = field(default_factory=dict)

    @property
    def trainable_fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        return (
            f"{self.strategy}: {self.trainable:,} of {self.total:,} parameters train "
            f"({100 * self.trainable_fraction:.2f}%)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "trainable_parameters": self.trainable,
            "total_parameters": self.total,
            "trainable_fraction": round(self.trainable_fraction, 6),
            "frozen_layers": self.frozen_stacks,
        }


def discover_anatomy(model: torch.nn.Module) -> ModelAnatomy:
    """Find layer stacks (``ModuleList``s of repeated blocks) and the output head by name."""
    import torch

    stacks: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1 and name.split(".")[-1] in _STACK_NAMES:
            parts = name.split(".")
            label = next((p for p in ("encoder", "decoder") if p in parts), parts[-1])
            if label in stacks:
                label = name
            stacks[label] = [f"{name}.{i}" for i in range(len(module))]
    main = "decoder" if "decoder" in stacks else (max(stacks, key=lambda k: len(stacks[k])) if stacks else None)
    head: list[str] = []
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name, module in model.named_modules():
        if output is not None and module is output:
            head.append(name)
        elif name.split(".")[-1] in ("classifier", "score", "proj_out", "head") and name not in head:
            head.append(name)
    return ModelAnatomy(stacks=stacks, main_stack=main, head=head)


def _stack(anatomy: ModelAnatomy, name: str | None, key: tuple) -> tuple[str, list[str]]:
    chosen = name or anatomy.main_stack
    if chosen is None or chosen not in anatomy.stacks:
        known = ", ".join(sorted(anatomy.stacks)) or "none found"
        raise RecipeRuntimeError(key, f"no layer stack '{chosen}' in this model (stacks: {known})")
    return chosen, anatomy.stacks[chosen]


def _under(param_name: str, prefixes: list[str]) -> bool:
    return any(param_name == p or param_name.startswith(p + ".") for p in prefixes)


def _glob_matches(names: list[str], pattern: str) -> list[str]:
    return [n for n in names if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n, pattern + ".*")]


def _set(model: torch.nn.Module, names: set[str], value: bool) -> None:
    for name, param in model.named_parameters():
        if name in names:
            param.requires_grad_(value)


def apply_freeze_plan(model: torch.nn.Module, recipe: RecipeBase, anatomy: ModelAnatomy) -> tuple[torch.nn.Module, FreezeReport]:
    """Set what trains. Returns the model (wrapped by PEFT for LoRA) and the accounting."""
    freeze = recipe.freeze
    names = [n for n, _ in model.named_parameters()]
    frozen_stacks: dict[str, list[int]] = {}

    def globbed(patterns: list[str], key: str) -> set[str]:
        chosen: set[str] = set()
        for i, pattern in enumerate(patterns):
            matched = _glob_matches(names, pattern)
            if not matched:
                raise RecipeRuntimeError(("freeze", key, i), f"'{pattern}' matches no parameter (e.g. {names[0]})")
            chosen.update(matched)
        return chosen

    if freeze.strategy in ("lora", "qlora"):
        model = _apply_lora(model, recipe, anatomy, globbed(freeze.train, "train"))
    else:
        for param in model.parameters():
            param.requires_grad_(freeze.strategy in ("full", "partial"))
        if freeze.strategy == "partial":
            _set(model, globbed(freeze.freeze, "freeze"), False)
            if freeze.freeze_layers is not None:
                stack, layers = _stack(anatomy, freeze.freeze_layers.stack, ("freeze", "freeze_layers", "stack"))
                chosen = freeze.freeze_layers.resolve(len(layers))
                _set(model, {n for n in names if _under(n, [layers[i] for i in chosen])}, False)
                frozen_stacks[stack] = chosen
        elif freeze.strategy == "transfer":
            if not anatomy.head and not freeze.train:
                raise RecipeRuntimeError(("freeze", "strategy"), "found no head to train; name it with freeze.train globs")
            _set(model, {n for n in names if _under(n, anatomy.head)}, True)
            if freeze.unfreeze_top:
                stack, layers = _stack(anatomy, freeze.unfreeze_stack, ("freeze", "unfreeze_stack"))
                top = layers[-freeze.unfreeze_top :]
                _set(model, {n for n in names if _under(n, top)}, True)
                frozen_stacks[stack] = list(range(len(layers) - len(top)))
        _set(model, globbed(freeze.train, "train"), True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if trainable == 0:
        raise RecipeRuntimeError(("freeze",), "the freeze plan leaves no parameter to train")
    return model, FreezeReport(freeze.strategy, trainable, total, frozen_stacks)


def peft_modules_to_save(model: torch.nn.Module, paths: Iterable[str]) -> list[str] | None:
    """``LoraConfig.modules_to_save`` for the modules at ``paths`` (full module paths), or a located error.

    PEFT takes every module whose name *ends with* an entry, so a last name alone (``norm``, ``conv1``)
    would train every layer's norm or every block's first convolution in full. A full path is exact
    unless another module's path ends with it (a top-level ``norm`` beside ``blocks.0.norm``), which
    PEFT cannot tell apart: refused, naming both."""
    names = [name for name, _ in model.named_modules()]
    chosen = sorted(set(paths))
    for path in chosen:
        namesakes = [name for name in names if name != path and name.endswith(path)]
        if namesakes:
            raise RecipeRuntimeError(("freeze", "train"), f"PEFT cannot train {path} in full beside LoRA without also "
                                     f"training {', '.join(namesakes[:3])}{' and more' if len(namesakes) > 3 else ''} "
                                     "(it matches module names by their ending); name other modules, or use "
                                     "freeze.strategy: partial")
    return chosen or None


def _apply_lora(model: torch.nn.Module, recipe: RecipeBase, anatomy: ModelAnatomy, extra: set[str]) -> torch.nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training

    settings = recipe.freeze.lora
    assert settings is not None  # resolved defaults fill it
    if recipe.model.quantization is not None:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.training.gradient_checkpointing
        )
    # Modules trained in full next to the adapters: a new head, and the recipe's `train` globs.
    modules_to_save = set(anatomy.head) if recipe.head.mode != "keep" else set()
    modules_to_save |= {re.sub(r"\.(weight|bias)$", "", name) for name in extra}
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias=settings.bias,
        modules_to_save=sorted(modules_to_save) or None,
        task_type=getattr(TaskType, anatomy.peft_task_type) if anatomy.peft_task_type else None,
    )
    try:
        if anatomy.add_adapters is not None:
            return anatomy.add_adapters(model, config)
        config.modules_to_save = peft_modules_to_save(model, config.modules_to_save or ())
        return get_peft_model(model, config)
    except ValueError as error:  # e.g. target modules not found
        raise RecipeRuntimeError(("freeze", "lora", "target_modules"), str(error)) from error
