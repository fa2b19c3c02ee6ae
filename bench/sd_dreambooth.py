"""DreamBooth throughput: `ftrecipe run` (in-process) against a plain Diffusers loop, same model, same batch.

On a GPU: the SD 1.5 UNet shape at 512 px, batch 2 (an instance and a class image), full UNet and LoRA,
with and without gradient checkpointing; images/s and peak memory of each, and ftrecipe's ratio to the
plain loop (goal 0.97x). ``--tiny`` runs the same comparison on the CPU with the tiny pipeline (the
tests run it). The SD 1.5 shape is built from its config (random weights): no download is needed.

    python bench/sd_dreambooth.py --base PATH_TO_SD15   # GPU
    python bench/sd_dreambooth.py --tiny     # CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

SD15_UNET = {"sample_size": 64, "cross_attention_dim": 768, "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2,
             "attention_head_dim": 8,
             "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
             "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")}


def peak_memory() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def write_recipe(folder: Path, *, tiny: bool, lora: bool, checkpointing: bool, steps: int, base: str | None) -> Path:
    size = 64 if tiny else 512
    model = f"  base: {base}\n" if base else "  base: stable-diffusion-v1-5/stable-diffusion-v1-5\n  init: scratch\n"
    recipe = folder / f"bench-{'lora' if lora else 'full'}-{int(checkpointing)}.yaml"
    recipe.write_text(
        "model:\n  modality: stable-diffusion\n" + model +
        f"freeze:\n  strategy: {'lora' if lora else 'full'}\n" + ("  lora: {r: 8, alpha: 8}\n" if lora else "") +
        f"data:\n  format: synthetic-subject\n  instance_images: 4\n  num_class_images: 4\n  resolution: {size}\n"
        f"training:\n  max_steps: {steps}\n  batch_size: 1\n  learning_rate: 1.0e-4\n  log_every: {steps}\n"
        f"  gradient_checkpointing: {str(checkpointing).lower()}\n"
        f"hardware:\n  accelerator: {'cpu' if tiny else 'cuda'}\n  precision: {'fp32' if tiny else 'bf16-mixed'}\n"
        "evaluation:\n  before_training: false\n  max_examples: 1\n  images_per_prompt: 1\n  num_inference_steps: 1\n"
        "  prompts: [a photo of sks toy]\n"
    )
    return recipe


def through_ftrecipe(recipe: Path, out: Path) -> dict:
    from ftrecipe.runner.entry import RunOptions, run_recipe
    from ftrecipe.validation import validate_file

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    code = run_recipe(validate_file(recipe), RunOptions(output=str(out), quiet=True))
    assert code == 0, f"ftrecipe run exited {code}"
    summary = json.loads((out / "summary.json").read_text())
    return {"images_per_s": summary["samples"] / summary["train_seconds"], "peak_gib": peak_memory()}


def plain_loop(*, tiny: bool, lora: bool, checkpointing: bool, steps: int) -> dict:
    """The same step written directly against Diffusers: UNet, AdamW, epsilon MSE, batch 2."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    device = "cpu" if tiny else "cuda"
    if tiny:
        unet = UNet2DConditionModel(sample_size=32, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32,
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), attention_head_dim=4,
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), norm_num_groups=8)
    else:
        unet = UNet2DConditionModel(**SD15_UNET)
    if lora:
        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=8, lora_alpha=8, target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.to(device).train()
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-4)
    side = unet.config.sample_size
    text = torch.randn(2, 77 if not tiny else 8, unet.config.cross_attention_dim, device=device)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = None
    for step in range(steps + 1):  # the first step warms up
        if step == 1:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        latents = torch.randn(2, 4, side, side, device=device)
        noise = torch.randn_like(latents)
        t = torch.randint(0, 1000, (2,), device=device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=not tiny):
            prediction = unet(scheduler.add_noise(latents, noise, t), t, text).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), noise)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return {"images_per_s": 2 * steps / (time.perf_counter() - started), "peak_gib": peak_memory()}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny pipeline on the CPU (seconds)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per measurement")
    parser.add_argument("--base", default=None, help="local SD 1.5 pipeline folder (GPU mode; e.g. from `hf download`)")
    args = parser.parse_args(argv)
    if not args.tiny and not args.base:
        parser.error("the GPU mode needs --base, a local Stable Diffusion 1.5 folder (or use --tiny)")
    steps = args.steps or (3 if args.tiny else 30)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftrecipe-sd-bench-") as scratch:
        folder = Path(scratch)
        cases = [(False, False), (True, False)] if args.tiny else [(lora, gc) for lora in (False, True) for gc in (False, True)]
        for lora, checkpointing in cases:
            recipe = write_recipe(folder, tiny=args.tiny, lora=lora, checkpointing=checkpointing, steps=steps, base=args.base)
            ours = through_ftrecipe(recipe, folder / recipe.stem)
            plain = plain_loop(tiny=args.tiny, lora=lora, checkpointing=checkpointing, steps=steps)
            row = {"mode": "lora" if lora else "full", "gradient_checkpointing": checkpointing,
                   "ftrecipe_images_per_s": round(ours["images_per_s"], 3), "plain_images_per_s": round(plain["images_per_s"], 3),
                   "ratio": round(ours["images_per_s"] / plain["images_per_s"], 3),
                   "ftrecipe_peak_gib": round(ours["peak_gib"], 2), "plain_peak_gib": round(plain["peak_gib"], 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    main()
