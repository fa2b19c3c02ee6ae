"""Save a text model as the recipe's ``output.save`` asks: the PEFT adapter, merged weights, or full."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def _is_peft(model: torch.nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_text_model(model: torch.nn.Module, tokenizer: Any, recipe: Any, directory: Path, *, smoke: bool) -> None:
    """Write ``directory`` so that ``from_pretrained`` (or ``PeftModel.from_pretrained``) loads it."""
    directory.mkdir(parents=True, exist_ok=True)
    mode = recipe.output.save
    if not _is_peft(model) or mode == "adapter":
        model.save_pretrained(directory)
    elif recipe.model.quantization is not None and recipe.model.init == "pretrained" and not smoke:
        _merge_into_unquantised_base(model, recipe, directory)
    else:
        model.merge_and_unload().save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _merge_into_unquantised_base(model: Any, recipe: Any, directory: Path) -> None:
    """A 4/8-bit base cannot hold merged weights: reload it in its compute dtype and merge there."""
    import tempfile

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    auto = AutoModelForCausalLM if recipe.model.modality == "causal-lm" else AutoModelForSequenceClassification
    dtype = getattr(torch, recipe.model.quantization.compute_dtype)
    with tempfile.TemporaryDirectory() as adapter_dir:
        model.save_pretrained(adapter_dir)
        base = auto.from_pretrained(
            recipe.model.base, revision=recipe.model.revision, dtype=dtype, trust_remote_code=recipe.model.trust_remote_code
        )
        PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().save_pretrained(directory)


def card_metadata(recipe: Any, pipeline_tag: str, base_dir: Path) -> dict[str, Any]:
    """Model-card metadata of a saved text model: PEFT for an adapter, the dataset id for a Hub dataset."""
    adapter = recipe.output.save == "adapter" and recipe.freeze.strategy in ("lora", "qlora")
    metadata: dict[str, Any] = {"library_name": "peft" if adapter else "transformers", "pipeline_tag": pipeline_tag}
    data = recipe.data
    if data.format == "hf" and isinstance(data.train, str) and not (base_dir / data.train).expanduser().exists():
        metadata["datasets"] = [data.train]
    return metadata
