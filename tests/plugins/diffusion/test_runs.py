"""The Stable Diffusion plugin through `ftrecipe run`: the offline demo, real DreamBooth photos with prior
preservation and LoRA files Diffusers loads (its own layout and kohya's), a full pipeline save, and exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import ROOT, metric_records, run_ok, run_whole_and_resumed

pytestmark = pytest.mark.e2e  # training runs end to end: outside the fast tier (pytest -m 'not e2e')

TINY = "  base: stable-diffusion-v1-5/stable-diffusion-v1-5\n  init: scratch\n"


def test_the_demo_learns_its_subject_and_writes_sample_grids(tmp_path):
    out = tmp_path / "demo"
    summary = run_ok(ROOT / "recipes" / "demo" / "stable-diffusion.yaml", out)
    before, after = summary["eval_before"], summary["eval_after"]
    assert after["eval_loss"] <= 0.7 * before["eval_loss"], (before, after)  # the README's promise
    assert after["black_images"] == 0
    steps = summary["steps"]
    assert {p.name for p in (out / "samples").glob("*.png")} == {"step-0.png", f"step-{steps // 2}.png", f"step-{steps}.png"}
    from PIL import Image

    assert Image.open(out / "samples" / f"step-{steps}.png").size == (3 * 64, 2 * 64)  # 2 prompts x 3 images
    assert (out / "model" / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_dreambooth_dog_with_prior_preservation_saves_lora_that_diffusers_loads(tmp_path, dog_photos):
    recipe = tmp_path / "dog.yaml"
    recipe.write_text(
        f"model:\n  modality: stable-diffusion\n{TINY}"
        "freeze:\n  strategy: lora\n  lora: {r: 4, alpha: 12, dropout: 0.0}\n"
        f"data:\n  format: dreambooth\n  instance_dir: {dog_photos}\n  instance_prompt: a photo of sks dog\n"
        "  class_prompt: a photo of dog\n  class_dir: classes\n  num_class_images: 2\n  class_inference_steps: 2\n"
        "  resolution: 64\n  flip: true\n"
        "training:\n  max_steps: 3\n  batch_size: 2\n  learning_rate: 1.0e-2\n  train_text_encoder: true\n  snr_gamma: 5.0\n"
        "  noise_offset: 0.05\n  log_every: 1\n"
        "hardware:\n  accelerator: cpu\n"
        "evaluation:\n  prompts: [a sks dog in the snow]\n  images_per_prompt: 1\n  num_inference_steps: 2\n"
        "output:\n  export: [kohya]\n"
    )
    out = tmp_path / "run"
    summary = run_ok(recipe, out)
    data = summary["data"]
    assert data["train_examples"] == 5 and data["class_images_generated"] == 2 and data["class_images"] == 2
    assert "DreamBooth needs about 10 images" in data["warnings"][0]
    assert sorted(p.name for p in (tmp_path / "classes").iterdir()) == ["class-00000.png", "class-00001.png"]
    assert set(summary["eval_after"]) == {"eval_loss", "eval_prior_loss", "black_images"}
    assert (out / "samples" / "step-0.png").is_file() and (out / "samples" / "step-3.png").is_file()

    # The file carries the adapters' configs: alpha 12 is not mistaken for the rank 4.
    from safetensors import safe_open

    weights = out / "model" / "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), "pt") as handle:
        metadata = json.loads(handle.metadata()["lora_adapter_metadata"])
        keys = list(handle.keys())
    assert metadata["unet.r"] == 4 and metadata["unet.lora_alpha"] == 12 and metadata["text_encoder.lora_alpha"] == 12
    assert any(k.startswith("unet.") for k in keys) and any(k.startswith("text_encoder.") for k in keys)

    # A fresh pipeline loads them (the run checked that every key is used and the prediction is the trained
    # model's) and generates; the adapters change what it draws.
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(out / "model" / "base")
    prompt, settings = "a sks dog in the snow", {"num_inference_steps": 2, "height": 64, "width": 64, "output_type": "np"}
    plain = pipe(prompt, generator=torch.Generator().manual_seed(0), **settings).images
    plain_prediction = prediction(pipe, prompt)
    pipe.load_lora_weights(out / "model")  # the folder holds both files: Diffusers picks its own
    adapted = pipe(prompt, generator=torch.Generator().manual_seed(0), **settings).images
    assert adapted.shape == (1, 64, 64, 3) and not (adapted == plain).all()
    card = (out / "model" / "README.md").read_text()
    assert "load_lora_weights('model')" in card

    # output.export: [kohya] wrote the same LoRA in the layout AUTOMATIC1111 and ComfyUI load: kohya's key
    # names, alpha 12 per layer (not the rank), sd-scripts' ss_* metadata.
    from safetensors.torch import load_file

    kohya = out / "model" / "pytorch_lora_weights_kohya.safetensors"
    tensors = load_file(kohya)
    with safe_open(str(kohya), "pt") as handle:
        ss = handle.metadata()
    downs = [k.removesuffix(".lora_down.weight") for k in tensors if k.endswith(".lora_down.weight")]
    assert len(downs) == len(keys) // 2 and len(tensors) == 3 * len(downs)  # down, up and alpha per adapted layer
    assert any(k.startswith("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q") for k in downs)
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj") for k in downs)
    assert {float(tensors[f"{k}.alpha"]) for k in downs} == {12.0}
    assert ss["ss_network_module"] == "networks.lora" and ss["ss_network_dim"] == "4" and ss["ss_network_alpha"] == "12.0"
    assert ss["ss_base_model_version"] == "sd_v1" and ss["ss_training_comment"] == "ftrecipe recipe dog"
    assert "ss_sd_model_name" not in ss  # a tiny pipeline built from configs is no model a tool holds
    assert "pytorch_lora_weights_kohya.safetensors" in card

    # Diffusers reads kohya files: loaded from it, the text encoder and UNet predict what they do with
    # Diffusers' own file (fp32 on the CPU: equal within 1e-5 of the LoRA's effect), not what the base does.
    lora_prediction = prediction(pipe, prompt)
    kohya_pipe = StableDiffusionPipeline.from_pretrained(out / "model" / "base")
    kohya_pipe.load_lora_weights(out / "model", weight_name=kohya.name)
    kohya_prediction = prediction(kohya_pipe, prompt)
    effect = float((lora_prediction - plain_prediction).abs().max())
    assert effect > 0
    assert float((kohya_prediction - lora_prediction).abs().max()) <= 1e-5 * effect


def prediction(pipe, prompt: str) -> torch.Tensor:
    """The UNet's noise prediction for ``prompt`` (through the pipeline's text encoder) at a fixed latent and timestep."""
    ids = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids
    size = pipe.unet.config.sample_size
    latents = torch.randn((1, pipe.unet.config.in_channels, size, size), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return pipe.unet(latents, torch.tensor([500]), pipe.text_encoder(ids)[0]).sample


def test_an_interrupted_run_resumes_exactly_and_the_full_pipeline_loads(tmp_path, example_site):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(
        f"model:\n  modality: stable-diffusion\n{TINY}  config: {{unet_channels: 16, vae_channels: 16}}\n"
        "freeze:\n  strategy: full\n"
        "data:\n  format: synthetic-subject\n  instance_images: 4\n  num_class_images: 4\n  resolution: 32\n  flip: true\n"
        "training:\n  max_steps: 6\n  batch_size: 2\n  learning_rate: 1.0e-3\n  log_every: 1\n  train_text_encoder: true\n"
        "hardware:\n  accelerator: cpu\n"
        "evaluation:\n  before_training: false\n  prompts: [a photo of sks toy]\n  images_per_prompt: 1\n  num_inference_steps: 2\n"
        "callbacks: [fault]\n"
    )
    whole, cut = run_whole_and_resumed(recipe, tmp_path, example_site, stop_at=3)
    from safetensors.torch import load_file

    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        a, b = load_file(whole / "model" / part), load_file(cut / "model" / part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    keys = ("step", "kind", "loss", "lr", "epoch", "eval_loss")
    assert metric_records(cut, keys) == metric_records(whole, keys)

    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(whole / "model")
    image = pipe("a photo of sks toy", num_inference_steps=2, height=32, width=32, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (32, 32)
    assert "from_pretrained('model')" in (whole / "model" / "README.md").read_text()


def test_two_processes_data_parallel_or_sharded_train_the_unet_one_process_trains(tmp_path):
    """DDP and FSDP over two CPU processes (gloo), one example each, equal one process with both: each
    process builds the same scratch pipeline (its text encoder written in every process, not only on
    rank 0) and each example draws its own noise, so only the order of the gradient sums differs. The
    FSDP UNet (its attention and ResNet blocks sharded, inner stacks first) is gathered whole and loads
    in Diffusers."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    recipe = tmp_path / "toy.yaml"
    recipe.write_text(
        f"model:\n  modality: stable-diffusion\n{TINY}  config: {{unet_channels: 16, vae_channels: 16}}\n"
        "freeze:\n  strategy: full\n"
        "data:\n  format: synthetic-subject\n  instance_images: 4\n  num_class_images: 4\n  resolution: 32\n  flip: true\n"
        "training:\n  max_steps: 4\n  batch_size: 2\n  learning_rate: 1.0e-3\n  log_every: 1\n"
        "hardware:\n  accelerator: cpu\n"
        "evaluation:\n  before_training: false\n  prompts: [a photo of sks toy]\n  images_per_prompt: 1\n  num_inference_steps: 2\n"
    )
    one = run_ok(recipe, tmp_path / "one")
    two = ("--set", "hardware.devices=2", "--set", "training.batch_size=1")
    ddp = run_ok(recipe, tmp_path / "ddp", *two)
    fsdp = run_ok(recipe, tmp_path / "fsdp", *two, "--set", "hardware.strategy=fsdp")
    assert (one["world_size"], ddp["world_size"], fsdp["world_size"]) == (1, 2, 2)
    assert fsdp["eval_after"]["black_images"] == 0  # the pipeline sampled with the sharded UNet
    part = "unet/diffusion_pytorch_model.safetensors"
    a, b, c = (load_file(tmp_path / run / "model" / part) for run in ("one", "ddp", "fsdp"))
    assert a.keys() == b.keys() == c.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 2e-4, f"largest difference {worst}"  # four Adam steps at 1e-3 on float32 sums in another order
    worst = max((b[k] - c[k]).abs().max().item() for k in a)
    assert worst <= 1e-4, f"FSDP against DDP: largest difference {worst}"  # (measured 2.7e-6)
    StableDiffusionPipeline.from_pretrained(tmp_path / "ddp" / "model")
    StableDiffusionPipeline.from_pretrained(tmp_path / "fsdp" / "model")


def test_lora_of_the_unet_and_text_encoder_under_fsdp_matches_one_process(tmp_path):
    """LoRA on the UNet and the text encoder, sharded over two processes: the adapters gathered from both
    equal one process's (the same global batch) and load into the pipeline the Diffusers way."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    recipe = tmp_path / "lora.yaml"
    recipe.write_text(
        f"model:\n  modality: stable-diffusion\n{TINY}  config: {{unet_channels: 16, vae_channels: 16}}\n"
        "freeze:\n  strategy: lora\n  lora: {r: 4, alpha: 4, dropout: 0.0}\n"
        "data:\n  format: synthetic-subject\n  instance_images: 4\n  num_class_images: 4\n  resolution: 32\n"
        "training:\n  max_steps: 3\n  batch_size: 2\n  learning_rate: 1.0e-2\n  train_text_encoder: true\n"
        "hardware:\n  accelerator: cpu\n"
        "evaluation:\n  before_training: false\n  prompts: [a photo of sks toy]\n  images_per_prompt: 1\n  num_inference_steps: 2\n"
    )
    run_ok(recipe, tmp_path / "one")
    sharded = run_ok(recipe, tmp_path / "fsdp", "--set", "hardware.devices=2", "--set", "training.batch_size=1",
                     "--set", "hardware.strategy=fsdp")
    assert sharded["world_size"] == 2
    a = load_file(tmp_path / "one" / "model" / "pytorch_lora_weights.safetensors")
    b = load_file(tmp_path / "fsdp" / "model" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("text_encoder.") for k in a)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 2e-4, f"largest difference {worst}"
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "fsdp" / "model" / "base")
    pipe.load_lora_weights(tmp_path / "fsdp" / "model")
    assert torch.isfinite(next(pipe.unet.parameters())).all()


def test_cached_latents_and_text_embeddings_train_exactly_as_without(tmp_path):
    """With the VAE and text encoder frozen, caching their outputs is a pure speed-up: the same weights."""
    from safetensors.torch import load_file

    def train(cache: bool) -> dict:
        recipe = tmp_path / f"cache-{cache}.yaml"
        recipe.write_text(
            f"model:\n  modality: stable-diffusion\n{TINY}  config: {{unet_channels: 16, vae_channels: 16}}\n"
            "data:\n  format: synthetic-subject\n  instance_images: 4\n  num_class_images: 4\n  resolution: 32\n"
            "  center_crop: true\n"
            f"training:\n  max_steps: 4\n  batch_size: 2\n  learning_rate: 1.0e-3\n  cache_latents: {str(cache).lower()}\n"
            f"  cache_text_embeddings: {str(cache).lower()}\n"
            "hardware:\n  accelerator: cpu\n"
            "evaluation:\n  before_training: false\n  prompts: [a photo of sks toy]\n  images_per_prompt: 1\n  num_inference_steps: 1\n")
        run_ok(recipe, tmp_path / f"run-{cache}")
        return load_file(tmp_path / f"run-{cache}" / "model" / "unet" / "diffusion_pytorch_model.safetensors")

    plain, cached = train(False), train(True)
    assert plain.keys() == cached.keys() and all(torch.equal(plain[k], cached[k]) for k in plain)
