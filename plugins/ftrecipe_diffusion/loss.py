"""The DreamBooth loss: noise drawn per example, the scheduler's target, Min-SNR weights, prior preservation.

Every random draw of an example (its timestep, noise, offset noise and latent sample) comes from a
generator seeded by that example's seed, itself drawn from ``example_rng(seed, index)``: a resumed run
draws what the uninterrupted run drew, whichever worker loaded the example.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Draws:
    """One batch's randomness (on the CPU, moved to the device by the caller)."""

    timesteps: torch.Tensor
    noise: torch.Tensor
    offset: torch.Tensor
    latent_eps: torch.Tensor


def draw(seeds: list[int], latent_shape: tuple[int, ...], num_train_timesteps: int) -> Draws:
    """Timestep, noise, offset noise (per channel) and the VAE sample's noise for each example."""
    timesteps, noise, offset, eps = [], [], [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        timesteps.append(torch.randint(0, num_train_timesteps, (1,), generator=generator))
        noise.append(torch.randn(latent_shape, generator=generator))
        offset.append(torch.randn((latent_shape[0], 1, 1), generator=generator))
        eps.append(torch.randn(latent_shape, generator=generator))
    return Draws(torch.cat(timesteps), torch.stack(noise), torch.stack(offset), torch.stack(eps))


def target_of(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """What the UNet learns to predict: the noise (epsilon) or the velocity (v-prediction)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unknown prediction type {prediction_type}")


def per_example_loss(prediction: torch.Tensor, target: torch.Tensor, timesteps: torch.Tensor, scheduler,
                     prediction_type: str, snr_gamma: float | None) -> torch.Tensor:
    """Mean squared error per example, Min-SNR weighted when ``snr_gamma`` is set (Hang et al. 2023):
    min(SNR, gamma) / SNR for epsilon, / (SNR + 1) for v-prediction."""
    loss = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=tuple(range(1, prediction.ndim)))
    if snr_gamma is None:
        return loss
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps).to(loss.device)
    weights = torch.clamp(snr, max=snr_gamma)
    weights = weights / (snr + 1) if prediction_type == "v_prediction" else weights / snr
    return loss * weights


def dreambooth_loss(per_example: torch.Tensor, is_class: torch.Tensor, prior_loss_weight: float) -> torch.Tensor:
    """Instance loss plus ``prior_loss_weight`` times the class (prior-preservation) loss."""
    instance = per_example[~is_class].mean()
    if not bool(is_class.any()):
        return instance
    return instance + prior_loss_weight * per_example[is_class].mean()
