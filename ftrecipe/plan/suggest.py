"""Changes that make a recipe fit its memory budget, ranked by the memory they save.

Each candidate is a list of ``--set`` overrides, validated like any recipe (a change the modality does
not accept is never suggested) and planned like the recipe itself.
"""

from __future__ import annotations

from typing import Any, Protocol

from ftrecipe.plan.memory import Estimate, verdict
from ftrecipe.sections import RecipeBase


class Planner(Protocol):
    """What suggestions need of :class:`ftrecipe.plan.build.Planner`."""

    def variant(self, overrides: list[str]) -> RecipeBase | None: ...

    def estimate(self, recipe: RecipeBase) -> Estimate: ...

DEVICE_COUNTS = (2, 4, 8)


def _candidates(recipe: RecipeBase) -> list[tuple[str, list[list[str]]]]:
    """(change, alternatives from mildest to strongest): the first that fits is suggested."""
    training, freeze, hardware = recipe.training, recipe.freeze, recipe.hardware
    out: list[tuple[str, list[list[str]]]] = []
    if not training.gradient_checkpointing:
        out.append(("gradient checkpointing", [["training.gradient_checkpointing=true"]]))
    steps, batch = [], training.batch_size
    while batch > 1:
        batch //= 2
        steps.append(batch)
    if steps:
        out.append(("smaller micro-batch, same effective batch", [
            [f"training.batch_size={b}", f"training.gradient_accumulation={-(-training.batch_size * training.gradient_accumulation // b)}"]
            for b in steps]))
    if freeze.strategy in ("full", "partial"):
        out.append(("LoRA adapters instead of full fine-tuning", [["freeze.strategy=lora"]]))
    if freeze.strategy in ("full", "partial", "lora"):
        out.append(("QLoRA: LoRA on a 4-bit base", [["freeze.strategy=qlora"]]))
    if training.optimizer == "adamw":
        out.append(("8-bit AdamW states", [["training.optimizer=adamw-8bit"]]))
    if hardware.devices * hardware.nodes == 1:
        out.append(("more devices with FSDP", [[f"hardware.devices={n}", "hardware.strategy=fsdp"] for n in DEVICE_COUNTS]))
    return out


def suggestions(planner: Planner, recipe: RecipeBase, current: Estimate, budget: int | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for change, alternatives in _candidates(recipe):
        best: dict[str, Any] | None = None
        for overrides in alternatives:
            varied = planner.variant(overrides)
            if varied is None:
                break
            try:
                estimate = planner.estimate(varied)
            except Exception:  # noqa: BLE001 - a variant the task cannot build is simply not suggested
                break
            best = {"change": change, "set": overrides, "per_device_bytes": estimate.expected,
                    "saves_bytes": current.expected - estimate.expected, "verdict": verdict(estimate, budget)}
            if best["verdict"] in ("fits", "tight"):
                break
        if best is not None and best["saves_bytes"] > 0:
            found.append(best)
    return sorted(found, key=lambda s: -s["saves_bytes"])
