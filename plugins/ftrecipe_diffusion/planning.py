"""What `ftrecipe plan` asks of the DreamBooth task: the trained model on the meta device, one training
forward, what gradient checkpointing recomputes, what stays beside the model, and the photos counted.

The model is built from configs alone: a local pipeline folder, the configs this plugin carries for
well-known bases (``configs/<org>--<name>/``), or the Hugging Face cache, in that order; nothing is
downloaded and no weight file is read. The plan is for the device the recipe is meant for, so the
frozen parts' dtype follows ``hardware.precision`` on a GPU rather than whatever this machine has.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ftrecipe.plugin import DataGuidance, PlanData, RecipeRuntimeError, looks_like_hub_id
from ftrecipe_diffusion import model as sd_model
from ftrecipe_diffusion.readers import ENOUGH_IMAGES

if TYPE_CHECKING:  # the plan is handed the task; it never imports the task module
    from ftrecipe.plugin import ModalityTask as DreamBoothTask

CONFIGS = Path(__file__).parent / "configs"
"""Configs of well-known bases, one folder per hub id (``/`` written ``--``): unet, text_encoder, vae."""

SAME_ARCHITECTURE = {
    "runwayml/stable-diffusion-v1-5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "CompVis/stable-diffusion-v1-4": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "stabilityai/stable-diffusion-2-base": "stabilityai/stable-diffusion-2-1-base",
    "stabilityai/stable-diffusion-2-1": "stabilityai/stable-diffusion-2-1-base",
    "stabilityai/stable-diffusion-2": "stabilityai/stable-diffusion-2-1-base",
}
"""Bases whose UNet, text encoder and VAE have the carried ones' shapes (only the configs' default
``sample_size`` differs, and the plan takes the resolution from ``data.resolution``)."""

GUIDANCE = DataGuidance(minimum=ENOUGH_IMAGES, unit="images",
                        source="the seed: Stable Diffusion needs about 10 images with DreamBooth")


@dataclass
class PlannedPipeline:
    """The configs the meta model was built from, kept for the forward pass and the extras."""

    unet: dict[str, Any]
    text_encoder: Any
    """A ``CLIPTextConfig``."""
    vae: dict[str, Any]
    where: str
    """Where the configs came from (a folder, ``carried``, ``cache``), for messages."""

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.vae["block_out_channels"]) - 1)


# -- configs ---------------------------------------------------------------------------------------

def _from_folder(folder: Path, where: str, **options: Any) -> PlannedPipeline:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig

    return PlannedPipeline(
        unet=dict(UNet2DConditionModel.load_config(str(folder), subfolder="unet", **options)),
        text_encoder=CLIPTextConfig.from_pretrained(str(folder), subfolder="text_encoder", **options),
        vae=dict(AutoencoderKL.load_config(str(folder), subfolder="vae", **options)),
        where=where,
    )


def _carried(base: str) -> PlannedPipeline | None:
    from transformers import CLIPTextConfig

    folder = CONFIGS / SAME_ARCHITECTURE.get(base, base).replace("/", "--")
    if not folder.is_dir():
        return None
    read = lambda name: json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))  # noqa: E731
    return PlannedPipeline(unet=read("unet"), text_encoder=CLIPTextConfig.from_dict(read("text_encoder")), vae=read("vae"),
                           where="carried")


def _local_folder(task: DreamBoothTask, base: str) -> Path | None:
    """``model.base`` as a folder: as the run opens it (from the working directory), or beside the recipe."""
    for folder in (Path(base).expanduser(), task.ctx.base_dir / Path(base).expanduser()):
        if folder.is_dir():
            return folder
    return None


def pipeline_configs(task: DreamBoothTask) -> PlannedPipeline:
    """The configs of the pipeline the run would load (see the module docstring for the order)."""
    if task._from_config():  # the tiny pipeline of --smoke / init: scratch, built as the run builds it
        from transformers.utils import logging

        shown = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()  # its save_pretrained's bar has no place in the plan
        try:
            folder = Path(task._source(plan_prompts(task)))
        finally:
            if shown:
                logging.enable_progress_bar()
        return _from_folder(folder, str(folder))
    base, key = task.recipe.model.base, ("model", "base")
    folder = _local_folder(task, base)
    if folder is not None:
        try:
            return _from_folder(folder, str(folder))
        except (OSError, ValueError) as error:
            raise RecipeRuntimeError(key, f"{folder} is not a Diffusers Stable Diffusion folder (unet/, text_encoder/, vae/ "
                                     f"configs): {str(error).strip().splitlines()[0]}") from error
    carried = _carried(base)
    if carried is not None:
        return carried
    if looks_like_hub_id(base):
        try:
            with warnings.catch_warnings():  # the hub client's deprecation notes about its own arguments
                warnings.simplefilter("ignore")
                return _from_folder(Path(base), "cache", revision=task.recipe.model.revision, local_files_only=True)
        except (OSError, ValueError):
            pass
    known = ", ".join(sorted({p.name.replace("--", "/") for p in CONFIGS.iterdir() if p.is_dir()} | set(SAME_ARCHITECTURE)))
    raise RecipeRuntimeError(key, f"no config for '{base}' here: it is not a local folder, not one of the bases whose configs "
                             f"ftrecipe carries ({known}), and not in the Hugging Face cache. Download its configs "
                             f"(`hf download {base} --include '*.json'`) or point model.base at a local folder")


def plan_prompts(task: DreamBoothTask) -> list[str]:
    """The prompts a tiny pipeline's tokenizer is built from (the run's: the data's and the sample prompts)."""
    splits, data = task.plan_splits(), task.recipe.data
    prompts = splits.prompts if splits is not None else [data.instance_prompt] + ([data.class_prompt] if data.class_prompt else [])
    return list(prompts) + task.validation_prompts()


# -- the model -------------------------------------------------------------------------------------

def planned_weight_dtype(recipe: Any) -> torch.dtype:
    """:attr:`DreamBoothTask.weight_dtype` on the device the recipe is meant for: a GPU unless
    ``hardware.accelerator`` says cpu or mps (the plan hands the task ``precision: auto`` already resolved)."""
    hardware = recipe.hardware
    if recipe.model.dtype != "auto":
        return getattr(torch, recipe.model.dtype)
    if hardware.accelerator in ("cpu", "mps"):
        return torch.float32
    return {"fp16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(hardware.precision, torch.float32)


def _bytes(module: torch.nn.Module, dtype: torch.dtype) -> int:
    """Bytes of ``module`` once ``.to(dtype)``: floating tensors in ``dtype``, the rest as they are."""
    size = torch.empty((), dtype=dtype).element_size()
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * (size if t.is_floating_point() else t.element_size()) for t in tensors)


# -- the data --------------------------------------------------------------------------------------


class DreamBoothPlan:
    """The DreamBooth task's plan hooks (``ModalityTask.planner``): the UNet (and text encoder) as trained, on meta."""

    def __init__(self, task: DreamBoothTask) -> None:
        self.task = task

    def model(self) -> sd_model.DreamBoothModel:
        """The :class:`DreamBoothModel` ``build_model`` returns, on meta, in float32 (the dtype the pipeline loads in)."""
        task = self.task
        task._planned_dtype = planned_weight_dtype(task.recipe)
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        configs = pipeline_configs(task)
        task.planned = configs
        task.train_text_encoder = task.recipe.training.train_text_encoder
        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(configs.unet)
            text_encoder = CLIPTextModel(configs.text_encoder) if task.train_text_encoder else None
        return sd_model.DreamBoothModel(unet, text_encoder)

    def forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        """``compute_loss`` on meta tensors: the instance examples, then as many class examples with prior
        preservation; the latents noised, the prediction and the (Min-SNR weighted) prior-preservation loss.
        The VAE encoding and a frozen text encoder run without gradients in the run: their outputs enter as inputs."""
        task = self.task
        configs, recipe = task.planned, task.recipe
        unet = model.unet
        prior = recipe.data.class_prompt is not None
        examples = batch_size * (2 if prior else 1)
        dtype = unet.conv_in.weight.dtype
        side = task.resolution // configs.vae_scale
        meta = {"device": "meta"}
        noisy = torch.empty(examples, configs.vae["latent_channels"], side, side, dtype=dtype, **meta)
        timesteps = torch.empty(examples, dtype=torch.long, **meta)
        tokens = configs.text_encoder.max_position_embeddings
        if model.text_encoder is not None:
            input_ids = torch.empty(examples, tokens, dtype=torch.long, **meta)
            prediction = model(noisy, timesteps, input_ids=input_ids)
        else:
            hidden = torch.empty(examples, tokens, configs.text_encoder.hidden_size, dtype=dtype, **meta)
            prediction = model(noisy, timesteps, encoder_hidden_states=hidden)
        target = torch.empty(prediction.shape, dtype=torch.float32, **meta)
        per_example = F.mse_loss(prediction.float(), target, reduction="none").mean(dim=tuple(range(1, prediction.ndim)))
        if recipe.training.snr_gamma is not None:
            per_example = per_example * torch.empty(examples, **meta)
        loss = per_example[:batch_size].mean()
        if prior:
            loss = loss + recipe.training.prior_loss_weight * per_example[batch_size:].mean()
        return loss

    def checkpoint_units(self, model: sd_model.DreamBoothModel) -> list[str]:
        """What ``enable_gradient_checkpointing`` recomputes: in the UNet's blocks every resnet (a mid block's
        first excepted: Diffusers runs it outside the checkpointed loop) and every transformer block inside
        the attentions (the attention modules' own projections in and out are kept); the text encoder's
        layers when it trains. Up- and downsamplers, ``conv_in``/``conv_out`` and the time embedding are not."""
        units: list[str] = []
        for name, module in model.unet.named_modules():
            if not hasattr(module, "gradient_checkpointing"):
                continue
            resnets = getattr(module, "resnets", None)
            if resnets is not None:
                first = 1 if type(module).__name__.startswith("UNetMidBlock") else 0
                units += [f"unet.{name}.resnets.{i}" for i in range(first, len(resnets))]
            blocks = getattr(module, "transformer_blocks", None)
            if blocks is not None:
                units += [f"unet.{name}.transformer_blocks.{i}" for i in range(len(blocks))]
        if model.text_encoder is not None:
            units += sd_model.anatomy(model, torch.float32).stacks["text_encoder"]
        return units

    def extras(self, model: sd_model.DreamBoothModel) -> dict[str, int]:
        """What the run keeps on the device beside the trained model: the frozen VAE (whole: the evaluation
        decodes with it), the frozen text encoder when it does not train, both in the weight dtype, and the
        latent and text-embedding caches when the recipe asks for them."""
        task = self.task
        from diffusers import AutoencoderKL
        from transformers import CLIPTextModel

        configs, recipe, dtype = task.planned, task.recipe, task.weight_dtype
        with torch.device("meta"):
            extras = {"vae": _bytes(AutoencoderKL.from_config(configs.vae), dtype)}
            if model.text_encoder is None:
                extras["text_encoder"] = _bytes(CLIPTextModel(configs.text_encoder), dtype)
        splits = task.plan_splits()
        if recipe.training.cache_latents and splits is not None:
            images = len(splits.train) + splits.num_class_images
            side = task.resolution // configs.vae_scale
            extras["latent_cache"] = images * 2 * configs.vae["latent_channels"] * side * side * 4  # mean and std, float32
        if recipe.training.cache_text_embeddings and splits is not None:
            width = configs.text_encoder.max_position_embeddings * configs.text_encoder.hidden_size
            extras["text_embedding_cache"] = len(set(splits.prompts)) * width * torch.empty((), dtype=dtype).element_size()
        return extras

    def data(self) -> PlanData:
        """The instance photos (the unit of the guidance) and the class images prior preservation wants.

        The evaluation denoises the instance photos themselves by design, so no overlap is reported."""
        task = self.task
        splits = task.plan_splits()
        if splits is None:
            return PlanData(unavailable=task.plan_unavailable, guidance=GUIDANCE)
        report = splits.report
        amount: dict[str, float] = {"images": float(len(splits.train))}
        repeated = f"only {len(splits.train)} instance image"  # the reader's guidance warning: the plan states it from GUIDANCE
        warnings = [warning for warning in report.warnings if not warning.startswith(repeated)]
        if splits.class_prompt is not None:
            amount["class_images"] = float(splits.num_class_images)
            shortfall = splits.num_class_images - len(splits.class_rows)
            if shortfall > 0 and splits.class_dir is not None:
                warnings.append(f"prior preservation: {len(splits.class_rows)} of {splits.num_class_images} class images are in "
                                f"{splits.class_dir}; the run first generates {shortfall} with the base pipeline "
                                f"({task.recipe.data.class_inference_steps} denoising steps each)")
        return PlanData(train_examples=report.train_examples, eval_examples=report.eval_examples, amount=amount,
                        guidance=GUIDANCE, mean_fill=1.0, warnings=warnings)
