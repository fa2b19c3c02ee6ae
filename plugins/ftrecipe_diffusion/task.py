"""The DreamBooth task: photos -> VAE latents -> noised at a drawn timestep -> the UNet's denoising loss,
with prior preservation; sample grids and a fixed-noise denoising loss as evaluation; Diffusers files."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from ftrecipe.plugin import DataBundle, EvalResult, ModalityTask, ModelAnatomy, RecipeRuntimeError, load_pretrained
from ftrecipe_diffusion import model as sd_model
from ftrecipe_diffusion.data import SubjectCollator, SubjectDataset
from ftrecipe_diffusion.loss import draw, dreambooth_loss, per_example_loss, target_of
from ftrecipe_diffusion.sections import PAPER_PROMPTS

SMOKE_RESOLUTION = 64
SMOKE_INFERENCE_STEPS = 2


class DreamBoothTask(ModalityTask):
    pipeline: Any = None
    _planned_dtype: torch.dtype | None = None
    """Set by ``ftrecipe plan``: the weight dtype on the device the recipe is meant for, not this machine's."""
    _model_built = False
    """Whether ``build_model`` has handed out the pipeline's own UNet (and text encoder) already."""

    # -- the pipeline --------------------------------------------------------------------------
    def _from_config(self) -> bool:
        return self.ctx.smoke or self.recipe.model.init == "scratch"

    @property
    def resolution(self) -> int:
        return min(self.recipe.data.resolution, SMOKE_RESOLUTION) if self.ctx.smoke else self.recipe.data.resolution

    @property
    def weight_dtype(self) -> torch.dtype:
        """The inference dtype the VAE and frozen parts are kept in: the run's mixed precision on a GPU."""
        if self._planned_dtype is not None:
            return self._planned_dtype
        if self.recipe.model.dtype != "auto":
            return getattr(torch, self.recipe.model.dtype)
        precision, hardware = self.recipe.hardware.precision, self.recipe.hardware.accelerator
        if hardware == "cpu" or not torch.cuda.is_available():
            return torch.float32
        if precision == "fp16-mixed":
            return torch.float16
        if precision == "bf16-mixed" or (precision == "auto" and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float32

    def _source(self, prompts: list[str]) -> str:
        model = self.recipe.model
        if not self._from_config():
            return model.base
        from ftrecipe_diffusion.tiny import TINY_KEYS, build_tiny_pipeline

        unknown = sorted(set(model.config) - set(TINY_KEYS))
        if unknown:
            raise RecipeRuntimeError(("model", "config"), f"unknown tiny-pipeline options {unknown}; known: {', '.join(TINY_KEYS)}")
        self._scratch = tempfile.TemporaryDirectory(prefix="ftrecipe-sd-")
        prediction = "epsilon" if model.prediction_type == "auto" else model.prediction_type
        build_tiny_pipeline(prompts, self._scratch.name, resolution=self.resolution, prediction_type=prediction,
                            seed=self.ctx.seed, **model.config)
        return self._scratch.name

    def load_base(self) -> Any:
        """A fresh base pipeline (the one training started from), on the CPU, without a safety checker."""
        from diffusers import StableDiffusionPipeline

        from diffusers.utils import logging

        logging.disable_progress_bar()  # ftrecipe reports progress itself
        logging.set_verbosity_error()
        revision = None if self._from_config() else self.recipe.model.revision
        return load_pretrained(StableDiffusionPipeline.from_pretrained, self.source, what="Stable Diffusion pipeline",
                               revision=revision, safety_checker=None, feature_extractor=None, requires_safety_checker=False)

    def _load(self, prompts: list[str]) -> None:
        from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

        self.source = self._source(prompts)
        self.pipeline = pipeline = self.load_base()
        self.tokenizer, self.vae = pipeline.tokenizer, pipeline.vae
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        wanted = self.recipe.model.prediction_type
        if wanted != "auto":
            self.noise_scheduler.register_to_config(prediction_type=wanted)
        self.prediction_type = self.noise_scheduler.config.prediction_type
        self.sample_scheduler = DPMSolverMultistepScheduler.from_config(self.noise_scheduler.config)
        self.vae.requires_grad_(False)
        if self.vae.dtype != self.weight_dtype:
            self.vae.to(self.weight_dtype)
        self.text_encoder = pipeline.text_encoder
        self.train_text_encoder = self.recipe.training.train_text_encoder
        if not self.train_text_encoder:
            self.text_encoder.requires_grad_(False).to(self.weight_dtype)

    # -- data ----------------------------------------------------------------------------------
    def validation_prompts(self) -> list[str]:
        prompts = self.recipe.evaluation.prompts
        if prompts is None:
            subject = self.recipe.data.instance_prompt.removeprefix("a photo of ").strip()
            prompts = [self.recipe.data.instance_prompt] + [p.format(subject) for p in PAPER_PROMPTS[:2]]
        return list(prompts[:2]) if self.ctx.smoke else list(prompts)

    def build_data(self) -> DataBundle:
        data, ctx = self.recipe.data, self.ctx
        splits = self.read_data()
        self._load(splits.prompts + self.validation_prompts())
        classes = list(splits.class_rows)
        shortfall = splits.num_class_images - len(classes)
        if shortfall > 0 and splits.class_dir is not None:
            from ftrecipe_diffusion.class_images import generate_class_images

            target = ctx.output_dir / "class_images" if ctx.smoke else splits.class_dir  # a tiny model's images never join a real cache
            ctx.log(f"prior preservation: {len(classes)} class images found, generating {shortfall} with the base pipeline")
            steps = SMOKE_INFERENCE_STEPS if ctx.smoke else data.class_inference_steps
            made = generate_class_images(self.pipeline, splits.class_prompt, target, shortfall, seed=ctx.seed + len(classes),
                                         resolution=self.resolution, steps=steps, log=ctx.log)
            classes += [{"image": str(p), "prompt": splits.class_prompt, "key": str(p)} for p in made]
            splits.report.details["class_images_generated"] = len(made)
        if splits.class_prompt is not None:
            splits.report.details["class_images"] = len(classes)
        if self.ctx.smoke and data.resolution != self.resolution:
            ctx.log(f"--smoke: images at {self.resolution} px instead of {data.resolution}")
        section = data.model_copy(update={"resolution": self.resolution})
        train = SubjectDataset(list(splits.train), classes, section, ctx.seed, train=True)
        evaluation = SubjectDataset(list(splits.train), [], section, ctx.seed, train=False)
        self.eval_classes = SubjectDataset(classes, [], section, ctx.seed, train=False) if classes else None
        self.collate = SubjectCollator(self.tokenizer)
        return DataBundle(train=train, eval=evaluation, collate=self.collate, report=splits.report, files=splits.files)

    # -- model and loss ------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The pipeline's own UNet (and text encoder when it trains) the first time; then a new copy of the
        same architecture (what a sharded run gathers its weights into)."""
        unet, text_encoder = self.pipeline.unet, self.text_encoder if self.train_text_encoder else None
        if self._model_built:
            unet = type(unet).from_config(unet.config).to(unet.dtype)
            text_encoder = type(text_encoder)(text_encoder.config).to(text_encoder.dtype) if text_encoder is not None else None
        self._model_built = True
        self._cache: dict[str, Any] = {}
        return sd_model.DreamBoothModel(unet, text_encoder)

    def anatomy(self, model: torch.nn.Module) -> ModelAnatomy:
        return sd_model.anatomy(model, self.weight_dtype)

    def latents(self, pixels: torch.Tensor, keys: list[str], eps: torch.Tensor) -> torch.Tensor:
        """VAE latents (scaled), sampled with ``eps``; the distribution cached per image with ``cache_latents``."""
        vae, cache = self.vae, self.recipe.training.cache_latents
        if vae.device != pixels.device:
            vae.to(pixels.device)
        missing = [i for i, key in enumerate(keys) if not cache or key not in self._cache]
        if missing:
            with torch.no_grad():
                dist = vae.encode(pixels[missing].to(self.weight_dtype)).latent_dist
            found = {keys[i]: (dist.mean[j].float(), dist.std[j].float()) for j, i in enumerate(missing)}
            if cache:
                self._cache.update(found)
        else:
            found = {}
        mean = torch.stack([(found.get(k) or self._cache[k])[0] for k in keys])
        std = torch.stack([(found.get(k) or self._cache[k])[1] for k in keys])
        return (mean + std * eps) * vae.config.scaling_factor

    def hidden_states(self, input_ids: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """The frozen text encoder's embeddings (cached per prompt with ``cache_text_embeddings``)."""
        encoder = self.text_encoder
        if encoder.device != input_ids.device:
            encoder.to(input_ids.device)
        cache = self.recipe.training.cache_text_embeddings
        if cache and all(("text", p) in self._cache for p in prompts):
            return torch.stack([self._cache[("text", p)] for p in prompts])
        with torch.no_grad():
            hidden = encoder(input_ids, return_dict=False)[0]
        if cache:
            self._cache.update({("text", p): h for p, h in zip(prompts, hidden)})
        return hidden

    def compute_loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        training, scheduler = self.recipe.training, self.noise_scheduler
        pixels = batch["pixel_values"]
        device = pixels.device
        shape = (self.vae.config.latent_channels, pixels.shape[-2] // self.vae_scale, pixels.shape[-1] // self.vae_scale)
        draws = draw(batch["seeds"], shape, scheduler.config.num_train_timesteps)
        latents = self.latents(pixels, batch["keys"], draws.latent_eps.to(device))
        noise = (draws.noise + training.noise_offset * draws.offset).to(device)
        timesteps = draws.timesteps.to(device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        if self.train_text_encoder:
            prediction = model(noisy, timesteps, input_ids=batch["input_ids"])
        else:
            prediction = model(noisy, timesteps, encoder_hidden_states=self.hidden_states(batch["input_ids"], batch["prompts"]))
        target = target_of(scheduler, latents, noise, timesteps, self.prediction_type)
        per_example = per_example_loss(prediction, target, timesteps, scheduler, self.prediction_type, training.snr_gamma)
        return dreambooth_loss(per_example, batch["is_class"], training.prior_loss_weight)

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    # -- evaluation and saving -----------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        from ftrecipe_diffusion.evaluation import evaluate

        return evaluate(self, model, data, max_examples=max_examples)

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        from ftrecipe_diffusion.saving import save

        save(self, model, directory)

    def model_card_notes(self) -> list[str]:
        from ftrecipe_diffusion.saving import card_notes

        return card_notes(self)

    def model_card_metadata(self) -> dict[str, Any]:
        adapter = self.save_form() == "adapter"
        return {"library_name": "diffusers", "pipeline_tag": "text-to-image",
                "tags": ["dreambooth", "stable-diffusion", *(["lora"] if adapter else [])]}

    # -- planning (`ftrecipe plan`): the hooks live in ftrecipe_diffusion.planning
    planner = "ftrecipe_diffusion.planning:DreamBoothPlan"

    def save_form(self) -> str:
        return self.recipe.output.save or ("adapter" if self.recipe.freeze.strategy == "lora" else "full")
