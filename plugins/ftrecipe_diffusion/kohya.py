"""The LoRA in kohya's single-file layout, the one AUTOMATIC1111, ComfyUI and kohya's sd-scripts load.

The keys come from Diffusers' own converter (``convert_state_dict_to_kohya``, the one its DreamBooth
scripts use for ``--output_kohya_format``) applied to PEFT's state dicts. Three things are set on top
of what it writes, each because the tools read the file that way:

- ``.alpha`` holds each layer's LoRA alpha: the converter writes the rank there, which would scale a
  LoRA trained with alpha != rank wrongly in every tool;
- the text encoder's keys start ``lora_te_`` (kohya's prefix for the one text encoder of SD 1.x/2.x;
  the converter writes SDXL's ``lora_te1_``), and name its modules as the classic CLIP checkpoint does
  (``text_model.encoder.layers...``), which Transformers 5 no longer nests under ``text_model``;
- ``ss_*`` metadata as sd-scripts' ``train_network.py`` writes it (network module, dim, alpha, base
  model version, training settings), which the tools show and filter on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

KOHYA_FILE = "pytorch_lora_weights_kohya.safetensors"
"""Diffusers' name for the kohya-layout file (its scripts' ``--output_kohya_format``); ``load_lora_weights``
on the folder still picks ``pytorch_lora_weights.safetensors``."""

ADAPTER = "default"


def _peft_state(module: torch.nn.Module, part: str) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """PEFT's state dict of ``module`` under ``part.`` keys, and each adapted layer's alpha by the
    name of its ``lora_A`` key."""
    from peft.tuners.lora import LoraLayer
    from peft.utils import get_peft_model_state_dict

    nested = part == "text_encoder" and not hasattr(module, "text_model")  # Transformers 5's flattened CLIP
    prefix = f"{part}.text_model." if nested else f"{part}."
    state = {prefix + key: value for key, value in get_peft_model_state_dict(module, adapter_name=ADAPTER).items()}
    alphas = {f"{prefix}{name}.lora_A.weight": float(layer.lora_alpha[ADAPTER]) for name, layer in module.named_modules()
              if isinstance(layer, LoraLayer) and ADAPTER in layer.lora_alpha}
    return state, alphas


def kohya_state_dict(unet: torch.nn.Module, text_encoder: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    """The adapters as ``lora_unet_*`` / ``lora_te_*`` ``lora_down``, ``lora_up`` and ``alpha`` tensors."""
    from diffusers.utils import convert_state_dict_to_kohya

    state, alphas = _peft_state(unet, "unet")
    if text_encoder is not None:
        more, more_alphas = _peft_state(text_encoder, "text_encoder")
        state.update(more)
        alphas.update(more_alphas)
    unknown = sorted(key for key in state if ".lora_A." not in key and ".lora_B." not in key)
    if unknown:
        raise ValueError(f"the kohya layout holds LoRA down/up weights and alphas only, not {unknown[0]}")
    converted = convert_state_dict_to_kohya(state)
    for key, alpha in alphas.items():  # the alpha key the converter derived for this layer, with the layer's alpha
        alpha_key = next(k for k in convert_state_dict_to_kohya({key: state[key]}) if k.endswith(".alpha"))
        converted[alpha_key] = torch.tensor(alpha, dtype=torch.float32)
    return {_single_text_encoder(key): value.detach().to("cpu").contiguous() for key, value in converted.items()}


def _single_text_encoder(key: str) -> str:
    return "lora_te_" + key.removeprefix("lora_te1_") if key.startswith("lora_te1_") else key


def base_model_version(pipeline: Any, prediction_type: str) -> str:
    """sd-scripts' ``ss_base_model_version``: ``sd_v1`` or ``sd_v2`` (OpenCLIP's text encoder, GELU),
    with ``_v`` for v-prediction."""
    version = "sd_v2" if pipeline.text_encoder.config.hidden_act == "gelu" else "sd_v1"
    return version + ("_v" if prediction_type == "v_prediction" else "")


def kohya_metadata(task: Any) -> dict[str, str]:
    """The ``ss_*`` keys sd-scripts writes that this run knows, as strings (safetensors metadata)."""
    recipe = task.recipe
    lora, training, data = recipe.freeze.lora, recipe.training, recipe.data
    version = base_model_version(task.pipeline, task.prediction_type)
    precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(task.weight_dtype, "no")
    comment = f"ftrecipe recipe {recipe.name}" + (f": {recipe.description}" if recipe.description else "")
    metadata: dict[str, Any] = {
        "ss_network_module": "networks.lora", "ss_network_dim": lora.r, "ss_network_alpha": float(lora.alpha),
        "ss_network_dropout": lora.dropout, "ss_output_name": recipe.name, "ss_training_comment": comment,
        "ss_base_model_version": version, "ss_v2": version.startswith("sd_v2"),
        "ss_resolution": (task.resolution, task.resolution), "ss_learning_rate": training.learning_rate,
        "ss_lr_scheduler": training.scheduler, "ss_max_train_steps": training.max_steps, "ss_seed": training.seed,
        "ss_optimizer": training.optimizer, "ss_batch_size_per_device": training.batch_size,
        "ss_gradient_accumulation_steps": training.gradient_accumulation,
        "ss_gradient_checkpointing": training.gradient_checkpointing, "ss_max_grad_norm": training.max_grad_norm,
        "ss_mixed_precision": precision, "ss_prior_loss_weight": training.prior_loss_weight,
        "ss_min_snr_gamma": training.snr_gamma, "ss_noise_offset": training.noise_offset,
        "ss_flip_aug": data.flip, "ss_random_crop": not data.center_crop, "ss_cache_latents": training.cache_latents,
    }
    if not task._from_config():  # a tiny pipeline built from configs is no model a tool could hold
        base = recipe.model.base
        metadata["ss_sd_model_name"] = Path(base).name if (task.ctx.base_dir / base).is_dir() or Path(base).is_dir() else base
    return {key: str(value) for key, value in metadata.items() if value is not None}


def write_kohya(task: Any, unet: torch.nn.Module, text_encoder: torch.nn.Module | None, directory: Path) -> Path:
    """Write :data:`KOHYA_FILE` into ``directory``; returns its path."""
    from safetensors.torch import save_file

    path = directory / KOHYA_FILE
    save_file(kohya_state_dict(unet, text_encoder), str(path), metadata=kohya_metadata(task))
    return path
