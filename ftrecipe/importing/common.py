"""Converters shared by the formats built on Transformers' Trainer (axolotl, LLaMA-Factory): its optimizer and
schedule names, and the citation base of its ``TrainingArguments`` defaults."""

from __future__ import annotations

from typing import Any

from ftrecipe.importing.table import Context, choice

TRANSFORMERS_VERSION = "v5.25.0"
TRAINING_ARGS = (f"https://github.com/huggingface/transformers/blob/{TRANSFORMERS_VERSION}"
                 "/src/transformers/training_args.py")
"""Transformers' TrainingArguments, whose defaults a LLaMA-Factory config inherits."""
INTEGRATIONS = (f"https://github.com/huggingface/transformers/blob/{TRANSFORMERS_VERSION}"
                "/src/transformers/integrations/integration_utils.py")
"""Transformers' tracker callbacks (WandbCallback, MLflowCallback): the environment they read and its defaults."""
WANDB_MODE = "https://github.com/wandb/wandb/blob/v0.31.0/wandb/sdk/wandb_settings.py#L400-L403"
"""W&B's own default mode, online, which a source tool that leaves the mode unset runs with (ftrecipe's is offline)."""

TRACKERS = ("tensorboard", "mlflow", "wandb")
"""The trackers a recipe's tracking.backends names."""
NOT_A_TRACKER = f"ftrecipe's trackers are {', '.join(TRACKERS)}"

SCHEDULER = choice({
    "cosine": "cosine", "linear": "linear", "constant": "constant", "constant_with_warmup": "constant_with_warmup",
    "polynomial": "polynomial", "inverse_sqrt": "inverse_sqrt"}, "schedule")

_OPTIMIZERS = choice({
    "adamw_torch": "adamw", "adamw_torch_fused": "adamw", "adamw_hf": "adamw", "paged_adamw_32bit": "adamw",
    "adamw_bnb_8bit": "adamw-8bit", "adamw_8bit": "adamw-8bit", "paged_adamw_8bit": "paged-adamw-8bit",
    "sgd": "sgd", "adafactor": "adafactor"}, "optimizer")


def optimizer(value: Any, ctx: Context) -> Any:
    """Transformers' optimizer names: AdamW variants -> adamw / adamw-8bit / paged-adamw-8bit; sgd; adafactor."""
    if value == "paged_adamw_32bit":
        ctx.note("optimizer", "32-bit AdamW, but not paged to host memory (ftrecipe pages only paged-adamw-8bit)")
    return _OPTIMIZERS(value, ctx)
