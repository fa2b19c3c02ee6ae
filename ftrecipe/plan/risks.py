"""What a reviewer should see in a plan: risky settings, and data against the seed's guidance."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from ftrecipe.data import resolve_sources
from ftrecipe.hub import looks_like_hub_id, remote_code_summary
from ftrecipe.plan.memory import duration
from ftrecipe.plan_records import PlanData
from ftrecipe.sections import RecipeBase

USUAL_LEARNING_RATES: dict[tuple[str, str], tuple[float, float]] = {
    ("adam", "full"): (1e-6, 3e-4),
    ("adam", "partial"): (1e-6, 3e-4),
    ("adam", "transfer"): (1e-5, 1e-2),
    ("adam", "lora"): (1e-5, 3e-3),
    ("adam", "qlora"): (1e-5, 3e-3),
    ("sgd", "any"): (1e-4, 0.1),
    ("adafactor", "any"): (1e-6, 1e-2),
}
"""Learning rates fine-tuning usually works with, by optimizer family and freeze strategy; a rate
more than three times outside the range is flagged."""
FAR = 3.0
WEIGHT_FILE_SUFFIXES = {".pt", ".pth", ".ckpt", ".safetensors", ".bin", ".yaml", ".yml", ".onnx"}
"""A base named like a file is a library's asset (``yolo11n.pt``), not a Hugging Face repository."""


def _usual_range(optimizer: str, strategy: str) -> tuple[float, float]:
    family = "adam" if "adamw" in optimizer else optimizer
    return USUAL_LEARNING_RATES.get((family, strategy)) or USUAL_LEARNING_RATES[(family, "any")]


def recipe_warnings(recipe: RecipeBase, base_dir: Path, *, code_refused: bool = False,
                    unread: Collection[str] = ()) -> list[str]:
    """What a reviewer should know about the recipe's settings. ``code_refused``: the recipe asks for the
    checkpoint's own code, and the plan was made without it (no ``--trust-remote-code``). ``unread``: the
    modality's ``ignores`` (a modality that has no ``model.revision`` names its base by other means)."""
    model, data, training = recipe.model, recipe.data, recipe.training
    warnings: list[str] = []
    if code_refused:
        warnings.append("model.trust_remote_code is true, but the plan ran none of the checkpoint's own code "
                        "(`ftrecipe plan --trust-remote-code` lets it): the base was planned from its config.json "
                        "with Transformers' own classes")
    elif model.trust_remote_code:
        warnings.append(f"model.trust_remote_code is true: {remote_code_summary(model.base, model.revision)}")
    if model.init == "pretrained" and model.revision is None and "model.revision" not in unread \
            and looks_like_hub_id(model.base) \
            and Path(model.base).suffix not in WEIGHT_FILE_SUFFIXES and not (base_dir / model.base).exists():
        warnings.append(f"model.revision is not pinned: '{model.base}' may change under the recipe (pin a commit)")
    if data.eval is not None and data.train is not None and \
            set(resolve_sources(data.eval, base_dir)) & set(resolve_sources(data.train, base_dir)):
        warnings.append("data.eval names the same source as data.train: the evaluation measures memorisation")
    low, high = _usual_range(training.optimizer, recipe.freeze.strategy)
    rate = training.learning_rate
    if model.init == "pretrained" and (rate > high * FAR or rate < low / FAR):  # from scratch: other rules
        warnings.append(f"training.learning_rate {rate:g} is far from the usual {low:g}-{high:g} for "
                        f"{recipe.freeze.strategy} with {training.optimizer}")
    return warnings


def _quantity(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if unit != "audio_hours" else f"{duration(value)} of audio"


def data_warnings(data: PlanData) -> list[str]:
    warnings = list(data.warnings)
    if data.unavailable:
        warnings.append(f"data not read here: {data.unavailable}")
    if data.eval_examples == 0:
        warnings.append("no evaluation examples: the run cannot tell learning from memorising (give data.eval or data.eval_fraction)")
    if data.overlap:
        warnings.append(f"{data.overlap} evaluation examples also appear in training")
    guidance = data.guidance
    if guidance is not None:
        amount = data.amount_of(guidance.unit)
        if amount is not None and amount < guidance.minimum:
            warnings.append(f"only {_quantity(amount, guidance.unit)}; {guidance.source}")
    return warnings
