"""Registration of the Stable Diffusion plugin: DreamBooth subject fine-tuning (full or LoRA).

Torch-free: this module runs on every `ftrecipe validate`; the task imports the heavy libraries.
"""

from __future__ import annotations

from ftrecipe.plugin import DatasetFormat, Modality, Problem, hookimpl, pretrained_check
from ftrecipe_diffusion import sections as s

STABLE_DIFFUSION = "stable-diffusion"

STARTER = """\
# ftrecipe run sd-dreambooth.yaml
model:
  modality: stable-diffusion
  base: stable-diffusion-v1-5/stable-diffusion-v1-5
freeze:
  strategy: lora
  lora: {r: 8, alpha: 8}
data:
  format: dreambooth
  instance_dir: photos            # about 10 photos of the subject
  instance_prompt: a photo of sks dog
  class_prompt: a photo of dog    # prior preservation
  class_dir: class-images
  num_class_images: 100
  resolution: 512
training:
  max_steps: 500
  batch_size: 1
  learning_rate: 1.0e-4
  prior_loss_weight: 1.0
evaluation:
  prompts: [a photo of sks dog in the snow]
"""

IMAGE_FORMAT_IGNORES = {
    "data.eval": "eval_loss denoises the instance images at fixed timesteps and noise",
    "data.eval_fraction": "eval_loss denoises the instance images at fixed timesteps and noise",
    "data.columns": "images and prompts have fixed roles",
    "data.augment": "crops and flips are data.center_crop and data.flip",
}


def _check(recipe) -> list[Problem]:
    problems = []
    freeze, training, data = recipe.freeze, recipe.training, recipe.data
    if freeze.strategy == "qlora":
        problems.append(Problem(("freeze", "strategy"), "Stable Diffusion trains on full-precision weights; use strategy lora"))
    if freeze.strategy == "lora" and freeze.train:
        problems.append(Problem(("freeze", "train"), "Diffusers' LoRA files hold adapters only; with lora, train globs have no place to be saved"))
    if recipe.output.save == "adapter" and freeze.strategy != "lora":
        problems.append(Problem(("output", "save"), "only a LoRA run has an adapter to save; use save: full"))
    if "kohya" in recipe.output.export:
        if freeze.strategy != "lora":
            problems.append(Problem(("output", "export"), "a kohya file holds LoRA adapters: it needs freeze.strategy: lora"))
        elif freeze.lora is not None and freeze.lora.bias != "none":
            problems.append(Problem(("output", "export"), "a kohya file holds LoRA down/up weights and alphas only: "
                                                          "set freeze.lora.bias: none"))
    if training.cache_latents and (not data.center_crop or data.flip):
        problems.append(Problem(("training", "cache_latents"), "cached latents are encoded once: set data.center_crop: true and data.flip: false"))
    if training.cache_text_embeddings and training.train_text_encoder:
        problems.append(Problem(("training", "cache_text_embeddings"), "the text encoder trains, so its embeddings change: cache only a frozen one"))
    return problems


@hookimpl
def ftrecipe_modalities():
    return Modality(
        name=STABLE_DIFFUSION,
        strategies=("ddp", "fsdp"),
        section=s.DiffusionModel,
        task="ftrecipe_diffusion.task:DreamBoothTask",
        description="Text-to-image: Stable Diffusion taught one subject from a few photos (DreamBooth), full or LoRA.",
        starter_recipe=STARTER,
        checks=(_check,),
        run_checks=(pretrained_check("model_index.json", "pipeline"),),
        sections={"training": s.DiffusionTraining, "evaluation": s.DiffusionEvaluation, "output": s.DiffusionOutput},
        ignores={
            "head": "a diffusion model has no classification head",
            "model.quantization": "Stable Diffusion trains on full-precision weights",
            "training.compile": "compiling the U-Net is not measured yet: it trains eagerly",
            "model.trust_remote_code": "Diffusers pipelines load without remote code",
            "evaluation.metrics": "the metrics are the denoising losses; the sample grids are under samples/",
            "evaluation.samples": "the samples are the image grids (evaluation.prompts, images_per_prompt)",
        },
    )


@hookimpl
def ftrecipe_dataset_formats():
    reader = "ftrecipe_diffusion.readers:"
    return [
        DatasetFormat("dreambooth", (STABLE_DIFFUSION,), s.DreamBoothData, reader + "read_dreambooth",
                      "A folder of subject photos with a prompt; optional class images for prior preservation.",
                      ignores={"data.train": "the photos are in data.instance_dir", **IMAGE_FORMAT_IGNORES},
                      required_paths=("instance_dir",)),
        DatasetFormat("synthetic-subject", (STABLE_DIFFUSION,), s.SyntheticSubjectData, reader + "read_synthetic_subject",
                      "A patterned toy drawn offline on varied backgrounds (demo, tests).",
                      ignores={"data.train": "the photos are drawn (instance_images)", "data.limit": "set instance_images",
                               **IMAGE_FORMAT_IGNORES}),
    ]
