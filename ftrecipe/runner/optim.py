"""Optimizer and learning-rate schedule from the recipe's training section."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ftrecipe.sections import BITSANDBYTES_OPTIMIZERS, TrainingSection

if TYPE_CHECKING:  # torch is imported by the code that builds: the plan counts steps without it
    import torch


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters, with biases and norm weights (1-D tensors) exempt from weight decay."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, training: TrainingSection) -> torch.optim.Optimizer:
    import torch

    groups = parameter_groups(model, training.weight_decay)
    lr = training.learning_rate
    if training.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=training.adam_betas)
    if training.optimizer in BITSANDBYTES_OPTIMIZERS:
        import bitsandbytes as bnb

        kind = bnb.optim.PagedAdamW8bit if training.optimizer == "paged-adamw-8bit" else bnb.optim.AdamW8bit
        return kind(groups, lr=lr, betas=training.adam_betas)
    if training.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    from transformers.optimization import Adafactor

    return Adafactor(groups, lr=lr, relative_step=False, scale_parameter=False, warmup_init=False)


def warmup_steps(training: TrainingSection, total_steps: int) -> int:
    if training.warmup_steps is not None:
        return training.warmup_steps
    if training.warmup_ratio is not None:
        return math.ceil(training.warmup_ratio * total_steps)
    return 0


def build_scheduler(optimizer: torch.optim.Optimizer, training: TrainingSection, total_steps: int) -> Any:
    from transformers import get_scheduler

    return get_scheduler(
        training.scheduler,
        optimizer=optimizer,
        num_warmup_steps=warmup_steps(training, total_steps),
        num_training_steps=total_steps,
    )


def step_counts(batches_per_epoch: int, training: TrainingSection, max_steps: int | None = None) -> tuple[int, int]:
    """(total optimizer steps, steps per epoch) from ``--max-steps``, ``training.max_steps`` or
    ``training.epochs``; ``batches_per_epoch`` is the micro-batches one process sees in an epoch."""
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / training.gradient_accumulation))
    total = max_steps or training.max_steps or max(1, math.ceil((training.epochs or 1) * steps_per_epoch))
    return total, steps_per_epoch
