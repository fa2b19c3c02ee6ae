"""Saving: the full pipeline, or LoRA weights through Diffusers' own path, checked by loading them back.

A LoRA run writes ``pytorch_lora_weights.safetensors`` with ``save_lora_weights`` and the adapters'
configs as metadata (rank, alpha, targets), so a loader never has to assume alpha = rank. The run then
loads the file into a fresh base pipeline with ``load_lora_weights`` and fails unless every saved
tensor landed in the model with its value, every adapted layer has the trained scale (alpha / rank) and
the loaded UNet predicts what the trained one does. ``output.export: [kohya]`` also writes the
single-file layout image tools load (:mod:`ftrecipe_diffusion.kohya`), checked the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ftrecipe.plugin import RecipeRuntimeError, RunFailure


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


def _compare_scales(trained: torch.nn.Module, loaded: torch.nn.Module, adapter: str, part: str) -> None:
    """Each adapted layer's scale (alpha / rank) as trained: a file whose alphas were lost or taken for the
    rank loads every weight right and still changes the model by the wrong amount."""
    from peft.tuners.lora import LoraLayer

    layers = dict(loaded.named_modules())
    for name, layer in trained.named_modules():
        if isinstance(layer, LoraLayer) and "default" in layer.scaling:
            got = getattr(layers.get(name), "scaling", {}).get(adapter)
            if got is None or abs(got - layer.scaling["default"]) > 1e-6 * abs(layer.scaling["default"]):
                raise RunFailure(f"the {part} LoRA layer {name} loads with scale {got} instead of the trained "
                                 f"{layer.scaling['default']:g} (alpha / rank)")


def _lora_effect(unet: Any, latents: torch.Tensor, t: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """What the adapters add to the UNet's prediction (with them minus without them)."""
    unet.enable_adapters()
    with_lora = unet(latents, t, hidden).sample.float()
    unet.disable_adapters()
    without = unet(latents, t, hidden).sample.float()
    unet.enable_adapters()
    return (with_lora - without).cpu()


def check_lora_reload(directory: Path, load_base: Callable[[], Any], unet: torch.nn.Module,
                      text_encoder: torch.nn.Module | None, weight_dtype: torch.dtype, weight_name: str | None = None,
                      expected: torch.Tensor | None = None) -> torch.Tensor:
    """Load the saved LoRA (``weight_name`` in ``directory``; Diffusers' own file by default) into a fresh
    base pipeline; every key must be used with its value, every layer must keep its scale, and the
    adapters must change the loaded UNet's prediction exactly as they change the trained one's (which
    fails if a loader took alpha for the rank). Returns the trained adapters' effect, which a second
    check of the same adapters takes as ``expected`` instead of running the trained UNet again."""
    fresh = load_base()
    fresh.load_lora_weights(directory, **({"weight_name": weight_name} if weight_name else {}))
    parts = [("UNet", unet, fresh.unet)] + ([("text encoder", text_encoder, fresh.text_encoder)] if text_encoder is not None else [])
    for part, trained, loaded in parts:
        adapter = _adapter_name(loaded)
        _compare(lora_layers(trained), lora_layers(loaded, adapter), part)
        _compare_scales(trained, loaded, adapter, part)
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
        if expected is None:
            expected = _lora_effect(unet, latents, t, hidden)
        got = _lora_effect(fresh.unet, latents, t, hidden)
    unet.train(was_training)
    scale = float(expected.abs().max())
    if scale > 0 and float((expected - got).abs().max()) > (5e-2 if half else 1e-3) * scale:
        ratio = float((got * expected).sum() / (expected * expected).sum())
        raise RunFailure("the LoRA loaded with load_lora_weights changes the prediction differently from the trained "
                         f"adapters (by {ratio:.3g} times): its scale alpha / rank was not kept")
    return expected


def export_kohya(task: Any, unet: torch.nn.Module, text_encoder: torch.nn.Module | None, directory: Path,
                 expected: torch.Tensor) -> None:
    """``output.export: [kohya]``: the single-file layout, loaded back through ``load_lora_weights`` (which
    reads kohya files) and checked like Diffusers' own file; a file that does not reload as trained is an
    error at ``output.export``."""
    from ftrecipe_diffusion.kohya import KOHYA_FILE, write_kohya

    try:
        path = write_kohya(task, unet, text_encoder, directory)
        check_lora_reload(directory, task.load_base, unet, text_encoder, task.weight_dtype, weight_name=KOHYA_FILE,
                          expected=expected)
    except (RunFailure, ValueError, KeyError) as error:
        (directory / KOHYA_FILE).unlink(missing_ok=True)
        raise RecipeRuntimeError(("output", "export"), f"the kohya LoRA file does not carry this LoRA: {error}") from error
    task.ctx.log(f"kohya export: {path.name} (lora_unet_/lora_te_ keys, alphas, ss_* metadata), "
                 "reloaded with load_lora_weights: the same prediction as the trained adapters")


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
        effect = check_lora_reload(directory, task.load_base, unet, text_encoder, task.weight_dtype)
        if "kohya" in task.recipe.output.export:
            export_kohya(task, unet, text_encoder, directory, effect)
        if task._from_config():  # no hub holds this base: keep it next to the adapter
            task.load_base().save_pretrained(directory / "base")
        return
    with tempfile.TemporaryDirectory(prefix="ftrecipe-sd-lora-") as scratch:
        save_lora(StableDiffusionPipeline, unet, text_encoder, Path(scratch))
        effect = check_lora_reload(Path(scratch), task.load_base, unet, text_encoder, task.weight_dtype)
        merged = task.load_base()
        merged.load_lora_weights(scratch)
        merged.fuse_lora()
        merged.unload_lora_weights()
    merged.save_pretrained(directory)
    if "kohya" in task.recipe.output.export:
        export_kohya(task, unet, text_encoder, directory, effect)


def card_notes(task: Any) -> list[str]:
    recipe = task.recipe
    base = "model/base" if task._from_config() else recipe.model.base
    prompt = (recipe.evaluation.prompts or [recipe.data.instance_prompt])[0]
    if task.save_form() == "adapter":
        load = [f"pipe = StableDiffusionPipeline.from_pretrained({base!r})", "pipe.load_lora_weights('model')"]
    else:
        load = ["pipe = StableDiffusionPipeline.from_pretrained('model')"]
    lines = ["## Use", "```python", "from diffusers import StableDiffusionPipeline", *load,
             f"image = pipe({prompt!r}).images[0]", "```",
             f"Instance prompt: `{recipe.data.instance_prompt}`. Sample grids of each evaluation are in `samples/`."]
    if "kohya" in recipe.output.export:
        from ftrecipe_diffusion.kohya import KOHYA_FILE

        where = (f"Diffusers reads it too: `pipe.load_lora_weights('model', weight_name={KOHYA_FILE!r})`"
                 if task.save_form() == "adapter" else
                 f"It applies to the base model ({'the tiny one this run built' if task._from_config() else f'`{base}`'}), "
                 "not to this merged pipeline, which already holds it")
        lines += ["", f"`{KOHYA_FILE}` is the same LoRA in kohya's single-file layout (`lora_unet_`/`lora_te_` keys, "
                      "alphas, `ss_*` metadata): copy it into AUTOMATIC1111's `models/Lora` or ComfyUI's `models/loras`. "
                      f"{where}. The run loaded it into a fresh base pipeline with Diffusers' `load_lora_weights` and "
                      "checked that it changes the prediction as the trained adapters do."]
    return lines
