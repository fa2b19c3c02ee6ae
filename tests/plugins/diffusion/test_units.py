"""Pieces of the Stable Diffusion plugin in-process: tokenizer and tiny pipeline, readers, class-image
cache, the drawn subject, the loss's code paths and the freeze grammar's reach into the UNet."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe_diffusion.sections import DreamBoothData


def photo(path: Path, size: int = 96, mode: str = "RGB", seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def section(folder: Path, **extra) -> DreamBoothData:
    return DreamBoothData(format="dreambooth", instance_dir=str(folder), instance_prompt="a photo of sks dog", resolution=64, **extra)


def test_the_tokenizer_knows_every_prompt_word_and_the_pipeline_reloads(tiny_pipeline_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_pipeline_dir)
    ids = pipe.tokenizer("a photo of sks dog").input_ids
    assert pipe.tokenizer.decode(ids, skip_special_tokens=True).strip() == "a photo of sks dog"
    assert pipe.tokenizer.unk_token_id not in ids[1:-1]
    image = pipe("a photo of sks dog", num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert pipe.scheduler.config.steps_offset == 1 and not pipe.scheduler.config.clip_sample


def test_a_good_folder_with_a_caption(tmp_path):
    from ftrecipe_diffusion.readers import read_dreambooth

    for i in range(3):
        photo(tmp_path / "dog" / f"{i}.jpg", seed=i)
    (tmp_path / "dog" / "1.txt").write_text("a photo of sks dog on a sofa\n")
    splits = read_dreambooth(section(tmp_path / "dog"), base_dir=tmp_path, seed=0, smoke=False)
    assert [r["prompt"] for r in splits.train] == ["a photo of sks dog", "a photo of sks dog on a sofa", "a photo of sks dog"]
    assert "DreamBooth needs about 10 images" in splits.report.warnings[0] and "only 3 instance images" in splits.report.warnings[0]
    assert tmp_path / "dog" / "1.txt" in splits.files


@pytest.mark.parametrize(("name", "write", "why"), [
    ("corrupt.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff not a jpeg"), "not a readable image"),
    ("tiny.png", lambda p: photo(p, size=16), "too small: 16x16 px"),
    ("grey.png", lambda p: photo(p, mode="L"), "not a colour image (mode L)"),
])
def test_a_bad_photo_is_skipped_or_fails(tmp_path, name, write, why):
    from ftrecipe_diffusion.readers import read_dreambooth

    photo(tmp_path / "dog" / "good.jpg")
    write(tmp_path / "dog" / name)
    splits = read_dreambooth(section(tmp_path / "dog"), base_dir=tmp_path, seed=0, smoke=False)
    assert [Path(r["image"]).name for r in splits.train] == ["good.jpg"]
    assert why in splits.report.skipped[str(tmp_path / "dog" / name)]
    with pytest.raises(RecipeRuntimeError) as caught:
        read_dreambooth(section(tmp_path / "dog", on_error="fail"), base_dir=tmp_path, seed=0, smoke=False)
    assert caught.value.path == ("data", "instance_dir") and name in str(caught.value) and why in str(caught.value)


def test_only_the_class_image_shortfall_is_generated_and_cached(tmp_path, tiny_pipeline_dir):
    from diffusers import StableDiffusionPipeline

    from ftrecipe_diffusion.class_images import generate_class_images
    from ftrecipe_diffusion.readers import read_dreambooth

    photo(tmp_path / "dog" / "a.jpg")
    photo(tmp_path / "class" / "class-00000.png", seed=5)  # the user's own: never overwritten
    mine = (tmp_path / "class" / "class-00000.png").read_bytes()
    data = section(tmp_path / "dog", class_prompt="a photo of dog", class_dir="class", num_class_images=3)
    splits = read_dreambooth(data, base_dir=tmp_path, seed=0, smoke=False)
    assert len(splits.class_rows) == 1 and splits.num_class_images == 3
    pipe = StableDiffusionPipeline.from_pretrained(tiny_pipeline_dir, safety_checker=None, requires_safety_checker=False)
    logged = []
    made = generate_class_images(pipe, "a photo of dog", splits.class_dir, 2, seed=0, resolution=64, steps=2, log=logged.append)
    assert [p.name for p in made] == ["class-00001.png", "class-00002.png"] and logged[-1].startswith("class images: generated 2 of 2")
    assert (tmp_path / "class" / "class-00000.png").read_bytes() == mine
    assert not list((tmp_path / "class").glob(".*.tmp"))
    again = read_dreambooth(data, base_dir=tmp_path, seed=0, smoke=False)
    assert len(again.class_rows) == 3  # the next run has none to generate


def test_the_drawn_subject_is_deterministic():
    from ftrecipe_diffusion.synthetic import draw_class_toy, draw_subject

    a, b = np.asarray(draw_subject(7, 3)), np.asarray(draw_subject(7, 3))
    assert np.array_equal(a, b) and not np.array_equal(a, np.asarray(draw_subject(7, 4)))
    assert np.array_equal(np.asarray(draw_class_toy(7, 1)), np.asarray(draw_class_toy(7, 1)))
    red = (a[..., 0] > 200) & (a[..., 1] < 60)
    assert red.sum() > 100  # the red toy is there


def test_loss_paths_offset_noise_min_snr_and_v_prediction():
    from diffusers import DDPMScheduler

    from ftrecipe_diffusion.loss import draw, dreambooth_loss, per_example_loss, target_of

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1, clip_sample=False)
    draws = draw([1, 2, 3, 4], (4, 8, 8), 1000)
    again = draw([1, 2, 3, 4], (4, 8, 8), 1000)
    assert torch.equal(draws.noise, again.noise) and torch.equal(draws.timesteps, again.timesteps)
    assert draws.offset.shape == (4, 4, 1, 1)
    latents = torch.randn(4, 4, 8, 8)
    assert torch.equal(target_of(scheduler, latents, draws.noise, draws.timesteps, "epsilon"), draws.noise)
    velocity = target_of(scheduler, latents, draws.noise, draws.timesteps, "v_prediction")
    assert torch.allclose(velocity, scheduler.get_velocity(latents, draws.noise, draws.timesteps))
    prediction = torch.zeros_like(latents)
    plain = per_example_loss(prediction, draws.noise, draws.timesteps, scheduler, "epsilon", None)
    weighted = per_example_loss(prediction, draws.noise, draws.timesteps, scheduler, "epsilon", 5.0)
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, draws.timesteps)
    assert torch.allclose(weighted, plain * torch.clamp(snr, max=5.0) / snr)
    v_weighted = per_example_loss(prediction, velocity, draws.timesteps, scheduler, "v_prediction", 5.0)
    assert torch.allclose(v_weighted, per_example_loss(prediction, velocity, draws.timesteps, scheduler, "v_prediction", None)
                          * torch.clamp(snr, max=5.0) / (snr + 1))
    is_class = torch.tensor([False, False, True, True])
    combined = dreambooth_loss(plain, is_class, 0.5)
    assert torch.isclose(combined, plain[:2].mean() + 0.5 * plain[2:].mean())


def test_the_freeze_grammar_reaches_unet_blocks(tiny_pipeline_dir):
    from diffusers import UNet2DConditionModel

    from ftrecipe.freeze import apply_freeze_plan
    from ftrecipe.sections import FreezeSection, HeadSection, LayerRange, LoraSettings, TrainingSection
    from ftrecipe_diffusion.model import DreamBoothModel, anatomy

    def plan(freeze):
        model = DreamBoothModel(UNet2DConditionModel.from_pretrained(tiny_pipeline_dir, subfolder="unet"))
        recipe = SimpleNamespace(freeze=freeze, head=HeadSection(), training=TrainingSection(), model=SimpleNamespace(quantization=None))
        return apply_freeze_plan(model, recipe, anatomy(model, torch.float32))

    model, report = plan(FreezeSection(strategy="partial", freeze_layers=LayerRange(first=3)))  # down 0, down 1, mid
    frozen = {n.split(".")[1] + "." + n.split(".")[2] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"down_blocks.0", "down_blocks.1", "mid_block.attentions", "mid_block.resnets"}
    assert report.frozen_stacks == {"unet": [0, 1, 2]}
    model, _ = plan(FreezeSection(strategy="partial", freeze=["unet.up_blocks.*"]))
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith("unet.up_blocks."))
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("unet.down_blocks."))
    model, _ = plan(FreezeSection(strategy="partial", freeze_layers=LayerRange(stack="up_blocks", last=1)))
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("unet.up_blocks.1."))
    model, report = plan(FreezeSection(strategy="lora", lora=LoraSettings()))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable) and any(".to_q." in n for n in trainable)
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if p.requires_grad)


@pytest.mark.e2e
def test_the_benchmark_runs_in_tiny_mode(tmp_path, monkeypatch):
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, str(ROOT / "bench" / "sd_dreambooth.py"), "--tiny", "--steps", "2"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["mode"] for r in rows] == ["full", "lora"] and all(r["ratio"] > 0 for r in rows)
