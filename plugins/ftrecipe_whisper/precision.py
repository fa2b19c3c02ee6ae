"""The dtype Whisper's weights are trained in, for the run (task.py) and the plan (planning.py) alike.

Transformers' ``from_pretrained`` loads a checkpoint in its stored dtype by default, and whisper-large-v3 is
stored in float16: mixed precision would then train half-precision weights with no float32 master copy
(Adam's updates underflow, and fp16's gradient scaler refuses half gradients). So ``model.dtype: auto``
means float32 weights here, whatever the file holds; a recipe asks for half weights by naming the dtype.
"""

from __future__ import annotations

from typing import Any

import torch

HALF = (torch.float16, torch.bfloat16)


def weight_dtype(recipe: Any) -> torch.dtype:
    """``model.dtype`` as written; float32 for ``auto`` (full and partial fine-tuning need master weights)."""
    return torch.float32 if recipe.model.dtype == "auto" else getattr(torch, recipe.model.dtype)


def stored_dtype(config: Any) -> torch.dtype | None:
    """The dtype a checkpoint's config says its weights are stored in (None when it does not say)."""
    dtype = getattr(config, "dtype", None)
    return getattr(torch, dtype.removeprefix("torch.")) if isinstance(dtype, str) else dtype
