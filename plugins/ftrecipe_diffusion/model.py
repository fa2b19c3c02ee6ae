"""What the runner trains: the UNet (and the text encoder when it trains), with its anatomy.

The VAE and a frozen text encoder stay on the task, outside this module: they are never handed to
the optimizer, never saved in checkpoints, and are kept in the inference dtype. LoRA adapters are
added the Diffusers way (``unet.add_adapter``), so the saved files are Diffusers' own LoRA format.
"""

from __future__ import annotations

from typing import Any

import torch

from ftrecipe.plugin import ModelAnatomy, switch_checkpointing

#: What ``target_modules: all-linear`` means here: the attention projections Diffusers' DreamBooth
#: LoRA script adapts (the convolutions and time embedding stay as they are).
UNET_LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


class DreamBoothModel(torch.nn.Module):
    """The trainable part of a Stable Diffusion pipeline: ``unet`` and, when it trains, ``text_encoder``.

    ``forward`` runs the whole trained path (so that data-parallel wrappers see it): the text encoder
    when it trains, then the UNet's prediction.
    """

    def __init__(self, unet: torch.nn.Module, text_encoder: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder

    def forward(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, *, encoder_hidden_states: torch.Tensor | None = None,
                input_ids: torch.Tensor | None = None) -> torch.Tensor:
        if encoder_hidden_states is None:
            encoder_hidden_states = self.text_encoder(input_ids, return_dict=False)[0]
        return self.unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict[str, Any] | None = None) -> None:
        """Called by the runner (:func:`ftrecipe.plugin.switch_checkpointing`) for ``training.gradient_checkpointing``:
        the UNet's blocks and, where it trains, the text encoder's layers, non-reentrant."""
        self.unet.enable_gradient_checkpointing()
        if self.text_encoder is not None:
            switch_checkpointing(self.text_encoder, True)


def anatomy(model: DreamBoothModel, weight_dtype: torch.dtype) -> ModelAnatomy:
    """Stacks the freeze grammar counts in: ``unet`` (down blocks, the mid block, up blocks: input side
    first), ``down_blocks``, ``up_blocks`` and, when it trains, ``text_encoder`` (its layers)."""
    unet = model.unet
    down = [f"unet.down_blocks.{i}" for i in range(len(unet.down_blocks))]
    up = [f"unet.up_blocks.{i}" for i in range(len(unet.up_blocks))]
    stacks = {"unet": down + (["unet.mid_block"] if unet.mid_block is not None else []) + up, "down_blocks": down, "up_blocks": up}
    if model.text_encoder is not None:
        prefix = "text_encoder.text_model" if hasattr(model.text_encoder, "text_model") else "text_encoder"  # transformers 4 / 5
        count = model.text_encoder.config.num_hidden_layers
        stacks["text_encoder"] = [f"{prefix}.encoder.layers.{i}" for i in range(count)]
    return ModelAnatomy(stacks=stacks, main_stack="unet", head=[], add_adapters=lambda m, config: add_adapters(m, config, weight_dtype))


def add_adapters(model: DreamBoothModel, config: Any, weight_dtype: torch.dtype) -> DreamBoothModel:
    """LoRA the Diffusers way: the base frozen (in ``weight_dtype``), ``add_adapter`` on the UNet (and the
    text encoder when it trains), the adapters in float32. ``all-linear`` means :data:`UNET_LORA_TARGETS`."""
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    model.requires_grad_(False)
    model.to(weight_dtype)
    targets = UNET_LORA_TARGETS if config.target_modules == "all-linear" else sorted(config.target_modules)
    common = {"r": config.r, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout, "bias": config.bias,
              "init_lora_weights": "gaussian"}
    model.unet.add_adapter(LoraConfig(target_modules=targets, **common))
    if model.text_encoder is not None:
        add_text_adapter(model.text_encoder, LoraConfig(target_modules=TEXT_LORA_TARGETS, **common))
    cast_training_params(model, dtype=torch.float32)
    return model


def add_text_adapter(text_encoder: torch.nn.Module, config: Any) -> None:
    """``text_encoder.add_adapter(config)``; where Transformers refuses the installed PEFT (Transformers 5
    asks for PEFT 0.22), PEFT injects the same adapter and the model records its config as
    ``add_adapter`` would, which is what ``get_peft_model_state_dict`` and the LoRA metadata read."""
    try:
        text_encoder.add_adapter(config)
    except ValueError as error:
        if "version of PEFT" not in str(error):
            raise
        from peft import inject_adapter_in_model

        inject_adapter_in_model(config, text_encoder, adapter_name="default")
        text_encoder.peft_config = {"default": config}
        text_encoder._hf_peft_config_loaded = True
