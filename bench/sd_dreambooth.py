"""DreamBooth throughput: `ftrecipe run` (in-process) against a plain Diffusers loop, same pipeline, same batch.

The step both sides take is the Diffusers DreamBooth script's: an instance and a class image (batch 2)
through the frozen VAE, their prompts through the frozen text encoder, the UNet's noise prediction
under bf16 autocast, MSE, gradient clipping at 1.0, AdamW. On a GPU the pipeline has Stable Diffusion
1.5's shape at 512 px (UNet, VAE and CLIP ViT-L/14 text encoder built from their configs, random
weights: no download, the same arithmetic), or is a real one with ``--base``. Full UNet and LoRA
(r 8 on the attention projections), each with and without gradient checkpointing; prints images/s
and peak memory of both sides and ftrecipe's ratio (goal 0.97x or better). ftrecipe's rate is read
from its own throughput log, the first window (warm-up) left out; the plain loop's clock starts
after three steps. Anchor: Diffusers documents full DreamBooth in 16 GB with gradient checkpointing
and 8-bit Adam.

    python bench/sd_dreambooth.py                 # CUDA: SD 1.5 shape, 512 px, 30 steps per case
    python bench/sd_dreambooth.py --base PATH     # CUDA: a local SD 1.5 pipeline folder
    python bench/sd_dreambooth.py --tiny          # CPU, seconds: the tiny pipeline (the tests run this)
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import torch

PROMPTS = ["a photo of sks toy", "a photo of toy"]
SD15_UNET = {"sample_size": 64, "cross_attention_dim": 768, "block_out_channels": (320, 640, 1280, 1280), "layers_per_block": 2,
             "attention_head_dim": 8,
             "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
             "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")}
SD15_VAE = {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (128, 256, 512, 512),
            "layers_per_block": 2, "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4,
            "norm_num_groups": 32, "sample_size": 512}
SD15_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
             "max_position_embeddings": 77, "hidden_act": "quick_gelu"}


def sd15_shaped_pipeline(folder: Path) -> Path:
    """A pipeline with SD 1.5's shapes, random weights, saved where a recipe's ``model.base`` can name it."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from ftrecipe_diffusion.tiny import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(PROMPTS, max_tokens=77)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SD15_TEXT))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, clip_sample=False)
    pipeline = StableDiffusionPipeline(vae=AutoencoderKL(**SD15_VAE), text_encoder=text, tokenizer=tokenizer,
                                       unet=UNet2DConditionModel(**SD15_UNET), scheduler=scheduler, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipeline.save_pretrained(folder)
    return folder


def tiny_pipeline(folder: Path) -> Path:
    from ftrecipe_diffusion.tiny import build_tiny_pipeline

    return build_tiny_pipeline(PROMPTS, folder, resolution=64)


def peak_gib() -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def fresh_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def write_recipe(folder: Path, base: Path, *, tiny: bool, lora: bool, checkpointing: bool, steps: int, log_every: int) -> Path:
    size = 64 if tiny else 512
    recipe = folder / f"bench-{'lora' if lora else 'full'}-{int(checkpointing)}.yaml"
    recipe.write_text(
        f"model:\n  modality: stable-diffusion\n  base: {base}\n"
        f"freeze:\n  strategy: {'lora' if lora else 'full'}\n" + ("  lora: {r: 8, alpha: 8, dropout: 0.0}\n" if lora else "") +
        f"data:\n  format: synthetic-subject\n  instance_images: 4\n  num_class_images: 4\n  resolution: {size}\n"
        f"  instance_prompt: {PROMPTS[0]}\n  class_prompt: {PROMPTS[1]}\n"
        f"training:\n  max_steps: {steps}\n  batch_size: 1\n  learning_rate: 1.0e-4\n  scheduler: constant\n  log_every: {log_every}\n"
        f"  gradient_checkpointing: {str(checkpointing).lower()}\n"
        f"hardware:\n  accelerator: {'cpu' if tiny else 'cuda'}\n  precision: {'fp32' if tiny else 'bf16-mixed'}\n"
        f"evaluation:\n  before_training: false\n  max_examples: 1\n  images_per_prompt: 1\n  num_inference_steps: 1\n"
        f"  prompts: [{PROMPTS[0]}]\n"
    )
    return recipe


def through_ftrecipe(recipe: Path, out: Path) -> dict:
    """`ftrecipe run` in this process; images/s from its throughput log, the first window left out."""
    from ftrecipe.runner.entry import RunOptions, run_recipe
    from ftrecipe.validation import validate_file

    fresh_memory()
    code = run_recipe(validate_file(recipe), RunOptions(output=str(out), quiet=True, argv=["run", str(recipe)]))
    assert code == 0, f"ftrecipe run exited {code}"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r["samples_per_second"] for r in records if r["kind"] == "train" and r.get("samples_per_second")]
    windows = windows[1:] or windows  # (a run of a single window: its only one)
    return {"images_per_s": sum(windows) / len(windows), "peak_gib": peak_gib()}


def plain_loop(base: Path, *, tiny: bool, lora: bool, checkpointing: bool, steps: int) -> dict:
    """The Diffusers DreamBooth step written out by hand, on the same pipeline."""
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from peft import LoraConfig

    fresh_memory()
    device, dtype = ("cpu", torch.float32) if tiny else ("cuda", torch.bfloat16)
    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False)
    vae, text_encoder, unet = pipe.vae.to(device, dtype), pipe.text_encoder.to(device, dtype), pipe.unet.to(device)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    if lora:
        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=8, lora_alpha=8, init_lora_weights="gaussian", target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    if checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    parameters = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-4)
    size = 64 if tiny else 512
    ids = pipe.tokenizer(PROMPTS, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True,
                         return_tensors="pt").input_ids.to(device)
    started, warm = 0.0, 3
    for step in range(steps + warm):
        if step == warm:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        pixels = torch.rand(2, 3, size, size, device=device) * 2 - 1
        with torch.no_grad():
            latents = vae.encode(pixels.to(dtype)).latent_dist.sample() * vae.config.scaling_factor
            hidden = text_encoder(ids)[0]
        noise = torch.randn_like(latents, dtype=torch.float32)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (2,), device=device)
        noisy = scheduler.add_noise(latents.float(), noise, t)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=not tiny):
            prediction = unet(noisy, t, hidden).sample
        loss = torch.nn.functional.mse_loss(prediction.float(), noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    result = {"images_per_s": 2 * steps / (time.perf_counter() - started), "peak_gib": peak_gib()}
    del pipe, vae, text_encoder, unet, optimizer
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny pipeline on the CPU (seconds)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per measurement")
    parser.add_argument("--base", default=None, help="a local SD 1.5 pipeline folder instead of the SD 1.5-shaped one")
    args = parser.parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        parser.error("the full benchmark needs CUDA; use --tiny on a CPU")
    steps = args.steps or (6 if args.tiny else 30)
    log_every = 2 if args.tiny else 5
    rows = []
    with tempfile.TemporaryDirectory(prefix="ftrecipe-sd-bench-") as scratch:
        folder = Path(scratch)
        base = Path(args.base) if args.base else (tiny_pipeline if args.tiny else sd15_shaped_pipeline)(folder / "base")
        cases = [(False, False), (True, False)] if args.tiny else [(lora, gc) for lora in (False, True) for gc in (False, True)]
        for lora, checkpointing in cases:
            recipe = write_recipe(folder, base, tiny=args.tiny, lora=lora, checkpointing=checkpointing, steps=steps,
                                  log_every=log_every)
            ours = through_ftrecipe(recipe, folder / recipe.stem)
            plain = plain_loop(base, tiny=args.tiny, lora=lora, checkpointing=checkpointing, steps=steps)
            row = {"mode": "lora" if lora else "full", "gradient_checkpointing": checkpointing,
                   "ftrecipe_images_per_s": round(ours["images_per_s"], 3), "plain_images_per_s": round(plain["images_per_s"], 3),
                   "ratio": round(ours["images_per_s"] / plain["images_per_s"], 3),
                   "ftrecipe_peak_gib": ours["peak_gib"] and round(ours["peak_gib"], 2),
                   "plain_peak_gib": plain["peak_gib"] and round(plain["peak_gib"], 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"ratio ftrecipe / plain Diffusers loop (goal >= 0.97): {', '.join(str(r['ratio']) for r in rows)}")
    return rows


if __name__ == "__main__":
    main()
