"""Evaluation: a denoising loss at fixed timesteps and noise, and one sample grid per evaluation.

``eval_loss`` is honest about what it measures: how well the model denoises the subject's own
photos (centre-cropped, unflipped) at ``evaluation.timesteps`` timesteps spread over the schedule,
with noise from a fixed generator, so every evaluation of a run sees exactly the same inputs and
``eval_before`` / ``eval_after`` compare. DreamBooth has no held-out photos to spare; this is a fit
to the subject, and ``eval_prior_loss`` (the class images, where prior preservation is on) shows
whether the rest of the class was kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ftrecipe_diffusion.loss import target_of

BLACK = 4 / 255  # brightest pixel of an image that counts as black


def text_encoder_of(task: Any, model: Any) -> Any:
    """The text encoder in use: the model's when it trains, else the task's frozen one."""
    return model.text_encoder if model.text_encoder is not None else task.text_encoder


def fixed_timesteps(count: int, num_train_timesteps: int) -> list[int]:
    """``count`` timesteps at the centres of equal parts of the schedule."""
    return [int((k + 0.5) * num_train_timesteps / count) for k in range(count)]


def denoising_loss(model: Any, latents: torch.Tensor, hidden: torch.Tensor, scheduler: Any, prediction_type: str,
                   timesteps: list[int], noise_seed: int) -> float:
    """Mean squared error of the prediction for ``latents`` (one image) at each fixed timestep, with
    noise drawn from ``noise_seed``: the same number for the same model, every time."""
    count = len(timesteps)
    generator = torch.Generator().manual_seed(noise_seed)
    noise = torch.randn((count, *latents.shape[1:]), generator=generator).to(latents.device, latents.dtype)
    t = torch.tensor(timesteps, device=latents.device)
    repeated = latents.expand(count, *latents.shape[1:])
    noisy = scheduler.add_noise(repeated, noise, t)
    prediction = model(noisy, t, encoder_hidden_states=hidden.expand(count, *hidden.shape[1:]))
    target = target_of(scheduler, repeated, noise, t, prediction_type)
    return torch.nn.functional.mse_loss(prediction.float(), target.float()).item()


def black_or_nan(images: np.ndarray) -> int:
    """How many images (N, H, W, C floats in [0, 1]) are all black or hold NaN: fp16 overflow's signature."""
    flat = images.reshape(len(images), -1)
    return int(sum(np.isnan(row).any() or float(np.nanmax(row)) <= BLACK for row in flat))


def sample_grid(pipeline: Any, prompts: list[str], *, per_prompt: int, steps: int, guidance: float, seed: int,
                resolution: int) -> tuple[Any, int]:
    """One row per prompt, ``per_prompt`` images each, from fixed seeds; and how many came out black or NaN."""
    from diffusers.utils import make_image_grid

    pipeline.set_progress_bar_config(disable=True)
    arrays = []
    for row, prompt in enumerate(prompts):
        generators = [torch.Generator().manual_seed(seed + row * per_prompt + k) for k in range(per_prompt)]
        out = pipeline([prompt] * per_prompt, num_inference_steps=steps, guidance_scale=guidance, height=resolution,
                       width=resolution, generator=generators, output_type="np").images
        arrays.append(np.asarray(out, dtype=np.float32))
    images = np.concatenate(arrays)
    bad = black_or_nan(images)
    pictures = pipeline.numpy_to_pil(np.nan_to_num(images, nan=0.0).clip(0, 1))
    return make_image_grid(pictures, rows=len(prompts), cols=per_prompt), bad


def _pipeline(task: Any, model: Any) -> Any:
    """The pipeline as it stands: the model's UNet (and text encoder) with the task's frozen parts."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=task.vae, text_encoder=text_encoder_of(task, model), tokenizer=task.tokenizer,
                                   unet=model.unet, scheduler=task.sample_scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def _mean_loss(task: Any, model: Any, dataset: Any, count: int, timesteps: list[int], salt: int) -> float:
    device = next(model.parameters()).device
    vae, encoder = task.vae.to(device), text_encoder_of(task, model).to(device)
    losses = []
    for i in range(count):
        (item,) = dataset[i]
        pixels = torch.from_numpy(item["pixels"])[None].to(device, task.weight_dtype)
        latents = vae.encode(pixels).latent_dist.mean.float() * vae.config.scaling_factor
        hidden = encoder(task.collate.tokenize([item["prompt"]]).to(device), return_dict=False)[0]
        seed = task.recipe.evaluation.seed * 1_000_003 + salt * 10_007 + i
        losses.append(denoising_loss(model, latents, hidden, task.noise_scheduler, task.prediction_type, timesteps, seed))
    return float(np.mean(losses))


def evaluate(task: Any, model: Any, data: Any, *, max_examples: int | None) -> Any:
    """``eval_loss`` (and ``eval_prior_loss``) at fixed timesteps and noise, and the sample grid."""
    from ftrecipe.plugin import EvalResult

    settings, smoke = task.recipe.evaluation, task.ctx.smoke
    device = next(model.parameters()).device
    timesteps = fixed_timesteps(settings.timesteps, task.noise_scheduler.config.num_train_timesteps)
    half = task.weight_dtype != torch.float32
    metrics: dict[str, float] = {}
    with torch.no_grad(), torch.autocast(device.type, dtype=task.weight_dtype, enabled=half):
        count = min(len(data.eval), max_examples or len(data.eval))
        metrics["eval_loss"] = _mean_loss(task, model, data.eval, count, timesteps, salt=0)
        if task.eval_classes is not None:
            count = min(len(task.eval_classes), max_examples or len(task.eval_classes))
            metrics["eval_prior_loss"] = _mean_loss(task, model, task.eval_classes, count, timesteps, salt=1)
        prompts = task.validation_prompts()
        grid, bad = sample_grid(_pipeline(task, model), prompts, per_prompt=settings.images_per_prompt,
                                steps=min(settings.num_inference_steps, 2) if smoke else settings.num_inference_steps,
                                guidance=settings.guidance_scale, seed=settings.seed, resolution=task.resolution)
    metrics["black_images"] = float(bad)
    if bad:
        task.ctx.warn(f"{bad} of {len(prompts) * settings.images_per_prompt} sample images are black or NaN, the sign of a "
                      f"numeric overflow at hardware.precision {task.recipe.hardware.precision}: use bf16-mixed or fp32 "
                      "(fp16 overflows in the VAE and attention)")
    return EvalResult(metrics, images={"grid": grid})
