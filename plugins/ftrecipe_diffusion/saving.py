"""Saving: the full pipeline, or LoRA weights through Diffusers' own path, checked by loading them back.

A LoRA run writes ``pytorch_lora_weights.safetensors`` with ``save_lora_weights`` and the adapters'
configs as metadata (rank, alpha, targets), so a loader never has to assume alpha = rank. The run then
loads the file into a fresh base pipeline with ``load_lora_weights`` and fails unless every saved
tensor landed in the model with its value and the loaded UNet predicts what the trained one does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ftrecipe.plugin import RunFailure


def lora_layers(module: torch.nn.Module, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """The module's LoRA tensors under Diffusers' key names."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    return convert_state_dict_to_diffusers(get_peft_model_state_dict(module, adapter_name=adapter_name))


def save_lora(pipeline_class: Any, unet: torch.nn.Module, text_encoder: torch.nn.Module | None, directory: Path) -> None:
    """``save_lora_weights`` with the adapter metadata, so that alpha travels with the weights."""
    from diffusers.training_utils import _collate_lora_metadata

    directory.mkdir(parents=True, exist_ok=True)
    pipeline_class.save_lora_weights(
        directory,
        unet_lora_layers=lora_layers(unet),
        text_encoder_lora_layers=lora_layers(text_encoder) if text_encoder is not None else None,
        **_collate_lora_metadata({"unet": unet, "text_encoder": text_encoder}),
    )


def _adapter_name(module: torch.nn.Module) -> str:
    names = list(getattr(module, "peft_config", {}))
    if len(names) != 1:
        raise RunFailure(f"expected one LoRA adapter after load_lora_weights, found {names or 'none'}")
    return names[0]


def _compare(trained: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor], part: str) -> None:
    unused = sorted(set(trained) - set(loaded))
    if unused:
        raise RunFailure(f"load_lora_weights left {len(unused)} saved {part} LoRA key(s) unused, e.g. {unused[0]}")
    extra = sorted(set(loaded) - set(trained))
    if extra:
        raise RunFailure(f"load_lora_weights created {part} LoRA key(s) that were not saved, e.g. {extra[0]}")
    for key, value in trained.items():
        if not torch.equal(value.float().cpu(), loaded[key].float().cpu()):
            raise RunFailure(f"the {part} LoRA weight {key} differs after load_lora_weights")


def _lora_effect(unet: Any, latents: torch.Tensor, t: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """What the adapters add to the UNet's prediction (with them minus without them)."""
    unet.enable_adapters()
    with_lora = unet(latents, t, hidden).sample.float()
    unet.disable_adapters()
    without = unet(latents, t, hidden).sample.float()
    unet.enable_adapters()
    return (with_lora - without).cpu()


def check_lora_reload(directory: Path, load_base: Callable[[], Any], unet: torch.nn.Module,
                      text_encoder: torch.nn.Module | None, weight_dtype: torch.dtype) -> None:
    """Load the saved LoRA into a fresh base pipeline; every key must be used with its value, and the
    adapters must change the loaded UNet's prediction exactly as they change the trained one's (which
    fails if a loader took alpha for the rank)."""
    fresh = load_base()
    fresh.load_lora_weights(directory)
    _compare(lora_layers(unet), lora_layers(fresh.unet, _adapter_name(fresh.unet)), "UNet")
    if text_encoder is not None:
        _compare(lora_layers(text_encoder), lora_layers(fresh.text_encoder, _adapter_name(fresh.text_encoder)), "text encoder")
    device = next(unet.parameters()).device
    config = unet.config
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((1, config.in_channels, config.sample_size, config.sample_size), generator=generator).to(device)
    hidden = torch.randn((1, 8, config.cross_attention_dim), generator=generator).to(device)
    t = torch.tensor([500], device=device)
    fresh.unet.to(device, weight_dtype).eval()
    was_training = unet.training
    unet.eval()
    half = weight_dtype != torch.float32
    with torch.no_grad(), torch.autocast(device.type, dtype=weight_dtype, enabled=half):
        expected = _lora_effect(unet, latents, t, hidden)
        got = _lora_effect(fresh.unet, latents, t, hidden)
    unet.train(was_training)
    scale = float(expected.abs().max())
    if scale > 0 and float((expected - got).abs().max()) > (5e-2 if half else 1e-3) * scale:
        ratio = float((got * expected).sum() / (expected * expected).sum())
        raise RunFailure("the LoRA loaded with load_lora_weights changes the prediction differently from the trained "
                         f"adapters (by {ratio:.3g} times): its scale alpha / rank was not kept")


def _assembled(task: Any, model: Any) -> Any:
    from diffusers import StableDiffusionPipeline

    from ftrecipe_diffusion.evaluation import text_encoder_of

    return StableDiffusionPipeline(vae=task.vae, text_encoder=text_encoder_of(task, model), tokenizer=task.tokenizer,
                                   unet=model.unet, scheduler=task.pipeline.scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def save(task: Any, model: Any, directory: Path) -> None:
    """``adapter``: Diffusers LoRA file (checked by reloading; a from-scratch base is kept in ``base/``);
    ``merged``: the LoRA loaded into the base and fused, saved as a full pipeline; ``full``: the pipeline."""
    import tempfile

    from diffusers import StableDiffusionPipeline

    form = task.save_form()
    unet, text_encoder = model.unet, model.text_encoder
    has_lora = bool(getattr(unet, "peft_config", None))
    directory.mkdir(parents=True, exist_ok=True)
    if not has_lora:
        _assembled(task, model).save_pretrained(directory)
        return
    if form == "adapter":
        save_lora(StableDiffusionPipeline, unet, text_encoder, directory)
        check_lora_reload(directory, task.load_base, unet, text_encoder, task.weight_dtype)
        if task._from_config():  # no hub holds this base: keep it next to the adapter
            task.load_base().save_pretrained(directory / "base")
        return
    with tempfile.TemporaryDirectory(prefix="ftrecipe-sd-lora-") as scratch:
        save_lora(StableDiffusionPipeline, unet, text_encoder, Path(scratch))
        check_lora_reload(Path(scratch), task.load_base, unet, text_encoder, task.weight_dtype)
        merged = task.load_base()
        merged.load_lora_weights(scratch)
        merged.fuse_lora()
        merged.unload_lora_weights()
    merged.save_pretrained(directory)


def card_notes(task: Any) -> list[str]:
    recipe = task.recipe
    base = "model/base" if task._from_config() else recipe.model.base
    prompt = (recipe.evaluation.prompts or [recipe.data.instance_prompt])[0]
    if task.save_form() == "adapter":
        load = [f"pipe = StableDiffusionPipeline.from_pretrained({base!r})", "pipe.load_lora_weights('model')"]
    else:
        load = ["pipe = StableDiffusionPipeline.from_pretrained('model')"]
    return ["## Use", "```python", "from diffusers import StableDiffusionPipeline", *load,
            f"image = pipe({prompt!r}).images[0]", "```",
            f"Instance prompt: `{recipe.data.instance_prompt}`. Sample grids of each evaluation are in `samples/`."]
