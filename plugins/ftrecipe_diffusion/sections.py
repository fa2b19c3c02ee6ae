"""Recipe sections the Stable Diffusion plugin contributes (torch-free: imported by `ftrecipe validate`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ftrecipe.plugin import LOCAL_PATH, DataSection, EvaluationSection, ModelSection, OutputSection, TrainingSection

#: The paper's live-subject prompts, with the subject written as ``{}`` (filled from the instance prompt).
PAPER_PROMPTS = (
    "a {} in the jungle",
    "a {} in the snow",
    "a {} on the beach",
    "a {} wearing a red hat",
)


class DiffusionModel(ModelSection):
    """A Diffusers Stable Diffusion pipeline (1.x or 2.x): hub id or local folder.

    With ``init: scratch`` (and with ``--smoke``) a tiny pipeline of the same family is built from
    configs, with a tokenizer built from the run's prompts; ``config`` may set ``unet_channels``,
    ``vae_channels``, ``text_hidden``, ``text_layers``, ``max_tokens``.
    """

    modality: Literal["stable-diffusion"]
    prediction_type: Literal["auto", "epsilon", "v_prediction"] = "auto"
    """What the UNet predicts; ``auto`` reads the base's scheduler config (SD 2.x 768 px models use v_prediction)."""


class DiffusionTraining(TrainingSection):
    """The optimisation loop's settings, with the DreamBooth training keys."""

    prior_loss_weight: Annotated[float, Field(ge=0)] = 1.0
    """Weight of the prior-preservation loss on class images (when the data has a class prompt)."""
    snr_gamma: Annotated[float, Field(gt=0)] | None = None
    """Min-SNR weighting of the loss (5.0 is the paper's value); null: plain MSE."""
    noise_offset: Annotated[float, Field(ge=0, le=1)] = 0.0
    """Offset noise (e.g. 0.05-0.1): lets the model learn very dark and very bright images."""
    train_text_encoder: bool = False
    """Train the CLIP text encoder too (in full, or with LoRA adapters under ``freeze.strategy: lora``)."""
    cache_latents: bool = False
    """Encode each training image with the frozen VAE once and reuse it (needs ``center_crop: true``, ``flip: false``)."""
    cache_text_embeddings: bool = False
    """Encode each prompt with the frozen text encoder once (not with ``train_text_encoder``)."""


class DiffusionEvaluation(EvaluationSection):
    """How the model is measured: a denoising loss at fixed timesteps and noise, and sample grids."""

    prompts: list[str] | None = None
    """Prompts of the sample grids (one row each); default: a few of the DreamBooth paper's prompts with the instance prompt's subject."""
    images_per_prompt: Annotated[int, Field(ge=1, le=16)] = 2
    """Images per prompt (the grid's columns)."""
    num_inference_steps: Annotated[int, Field(ge=1, le=1000)] = 25
    """Denoising steps per sample image."""
    guidance_scale: Annotated[float, Field(ge=0)] = 7.5
    """Classifier-free guidance scale of the samples (1 or less: no guidance)."""
    seed: int = 0
    """Seed of the sample images: the same noise at every evaluation, so the grids compare."""
    timesteps: Annotated[int, Field(ge=1, le=50)] = 5
    """Fixed timesteps, spread over the schedule, at which ``eval_loss`` denoises each image."""


class DiffusionOutput(OutputSection):
    """Besides Diffusers' files: exports of the trained LoRA."""

    export: list[Literal["kohya"]] = Field(default_factory=list)
    """``kohya``: ``model/pytorch_lora_weights_kohya.safetensors``, the single-file layout AUTOMATIC1111, ComfyUI
    and kohya's sd-scripts load (``lora_unet_``/``lora_te_`` keys, alphas, ``ss_*`` metadata); LoRA runs only,
    checked by loading it back with Diffusers' ``load_lora_weights``."""


class ImageData(DataSection):
    """Options every image format shares."""

    resolution: Annotated[int, Field(ge=8, le=2048, multiple_of=8)] = 512
    """Side of the square training images, in pixels (images are resized, then cropped)."""
    center_crop: bool = False
    """Crop the centre; false: a random crop per example and epoch."""
    flip: bool = False
    """Random horizontal flip (half the examples, drawn per example and epoch)."""
    min_size: Annotated[int, Field(ge=1)] | None = None
    """Images whose shorter side is below this are reported as too small; default: half the resolution."""


class DreamBoothData(ImageData):
    """A folder of instance images of one subject, with an optional class for prior preservation.

    A ``<image>.txt`` next to an image is its caption (used instead of ``instance_prompt``).
    Only the shortfall of class images is generated with the base pipeline; they are cached in
    ``class_dir`` for the next run (``--smoke`` writes its own into the run's folder).
    """

    format: Literal["dreambooth"]
    instance_dir: Annotated[str, LOCAL_PATH]
    """Folder of the subject's photos (jpg, jpeg, png, webp, bmp), relative to the recipe."""
    instance_prompt: str
    """Prompt with a rare identifier and the class, e.g. ``a photo of sks dog``."""
    captions: bool = True
    """Use ``<image>.txt`` captions where they exist."""
    class_prompt: str | None = None
    """Prompt of the class (``a photo of dog``): switches prior preservation on."""
    class_dir: Annotated[str | None, LOCAL_PATH] = None
    """Folder of class images (created and filled with generated images where short)."""
    num_class_images: Annotated[int, Field(ge=1)] = 100
    """How many class images prior preservation uses."""
    class_inference_steps: Annotated[int, Field(ge=1, le=1000)] = 25
    """Denoising steps of each generated class image."""

    @field_validator("instance_prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("instance_prompt must not be empty")
        return value

    @model_validator(mode="after")
    def _class_pair(self) -> DreamBoothData:
        if (self.class_prompt is None) != (self.class_dir is None):
            raise ValueError("prior preservation needs both class_prompt and class_dir")
        return self


class SyntheticSubjectData(ImageData):
    """A toy the plugin draws (a patterned shape on varied backgrounds), deterministic from the seed;
    class images are plain toys of other shapes and colours. For the offline demo and tests."""

    format: Literal["synthetic-subject"]
    resolution: Annotated[int, Field(ge=8, le=512, multiple_of=8)] = 64
    instance_images: Annotated[int, Field(ge=1, le=1000)] = 8
    """How many photos of the subject to draw."""
    instance_prompt: str = "a photo of sks toy"
    class_prompt: str | None = "a photo of toy"
    """Prompt of the drawn class images (null: no prior preservation)."""
    num_class_images: Annotated[int, Field(ge=1, le=1000)] = 8
