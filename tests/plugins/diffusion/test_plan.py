"""`ftrecipe plan`'s questions to the DreamBooth task: the meta model is the one the run trains, the meta
forward mirrors compute_loss, the checkpoint units are what Diffusers recomputes, the carried configs are
the real bases', and the data is counted as the run reports it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ftrecipe.freeze import apply_freeze_plan
from ftrecipe.plugin import RecipeRuntimeError, TaskContext, switch_checkpointing
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_file, validate_text
from ftrecipe_diffusion.task import DreamBoothTask
from tests.conftest import ROOT

TINY = """\
name: plan-sd
model: {{modality: stable-diffusion, base: stable-diffusion-v1-5/stable-diffusion-v1-5, init: scratch}}
data: {{format: synthetic-subject, instance_images: 3, num_class_images: 2, resolution: 32}}
training: {{max_steps: 1, batch_size: 2}}
hardware: {{accelerator: cpu, precision: fp32}}
evaluation: {{prompts: [a photo of sks toy]}}
{extra}"""

VARIANTS = {
    "full": "freeze: {strategy: full}\n",
    "full, text encoder": "freeze: {strategy: full}\ntraining: {max_steps: 1, batch_size: 2, train_text_encoder: true}\n",
    "lora": "freeze: {strategy: lora, lora: {r: 4}}\n",
    "lora, text encoder": "freeze: {strategy: lora, lora: {r: 4}}\ntraining: {max_steps: 1, batch_size: 2, train_text_encoder: true}\n",
    "partial": "freeze: {strategy: partial, freeze_layers: {first: 2}}\n",
    "no prior": "freeze: {strategy: full}\ndata: {format: synthetic-subject, instance_images: 3, class_prompt: null, resolution: 32}\n",
}


def merged(extra: str) -> str:
    """TINY with ``extra``'s top-level sections replacing TINY's own."""
    replaced = {line.split(":")[0] for line in extra.splitlines() if line and not line.startswith(" ")}
    kept = [line for line in TINY.format(extra="").splitlines() if line.split(":")[0] not in replaced]
    return "\n".join(kept) + "\n" + extra


def task_of(text: str, tmp_path: Path, base_dir: Path | None = None) -> DreamBoothTask:
    result = validate_text(text, source="r.yaml")
    assert result.ok, [d.text() for d in result.diagnostics]
    ctx = TaskContext(recipe=result.recipe, registry=get_registry(), base_dir=base_dir or tmp_path, output_dir=tmp_path / "run",
                      log=lambda message: None, warn=lambda message: None)
    return DreamBoothTask(ctx)


def file_task(path: Path, tmp_path: Path, **overrides) -> DreamBoothTask:
    result = validate_file(path)
    assert result.ok, [d.text() for d in result.diagnostics]
    recipe = result.recipe
    for section, values in overrides.items():
        recipe = recipe.model_copy(update={section: getattr(recipe, section).model_copy(update=values)})
    ctx = TaskContext(recipe=recipe, registry=get_registry(), base_dir=Path(result.base_dir), output_dir=tmp_path / "run",
                      log=lambda message: None, warn=lambda message: None)
    return DreamBoothTask(ctx)


def signature(model: torch.nn.Module) -> dict[str, tuple]:
    return {name: (tuple(p.shape), p.dtype) for name, p in model.named_parameters()}


def trainable(model: torch.nn.Module) -> dict[str, tuple]:
    return {name: (tuple(p.shape), p.dtype) for name, p in model.named_parameters() if p.requires_grad}


class Built:
    """One variant: the run's task with its data and model built (the model's signature taken before the
    freeze plan, which adds LoRA adapters in place), and a fresh task to plan the same recipe."""

    def __init__(self, text: str, tmp: Path) -> None:
        self.run = task_of(text, tmp / "real")
        self.data = self.run.build_data()
        model = self.run.build_model()
        self.signature = signature(model)
        self.model, self.report = apply_freeze_plan(model, self.run.recipe, self.run.anatomy(model))  # as the common loop does
        self.plan = task_of(text, tmp / "plan")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Built]:
    return {name: Built(merged(extra), tmp_path_factory.mktemp("variant")) for name, extra in VARIANTS.items()}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_meta_model_is_what_build_model_returns_and_freezes_alike(built, variant):
    case = built[variant]
    meta = case.plan.plan_model()
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert signature(meta) == case.signature
    meta, report = case.plan.plan_freeze(meta)
    assert trainable(meta) == trainable(case.model)
    assert (report.trainable, report.total) == (case.report.trainable, case.report.total)


def _unet_inputs(model: torch.nn.Module) -> tuple[list, object]:
    seen: list = []

    def record(module, args, kwargs):
        sample, timesteps, hidden = args[:3]
        seen.append((tuple(sample.shape), sample.dtype, tuple(timesteps.shape), tuple(hidden.shape), hidden.dtype))

    return seen, model.unet.register_forward_pre_hook(record, with_kwargs=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_meta_forward_feeds_the_unet_what_compute_loss_feeds_it(built, variant):
    case = built[variant]
    meta, _ = case.plan.plan_freeze(case.plan.plan_model())
    meta.train()
    for batch_size in (1, 2):
        batch = case.data.collate([case.data.train[i] for i in range(batch_size)])
        seen_real, handle = _unet_inputs(case.model)
        case.run.compute_loss(case.model, batch)
        handle.remove()
        seen_meta, handle = _unet_inputs(meta)
        loss = case.plan.plan_forward(meta, batch_size)
        handle.remove()
        assert seen_meta == seen_real
        assert loss.device.type == "meta" and loss.shape == () and loss.requires_grad
        loss.backward()  # autograd runs on meta too


@pytest.mark.parametrize("variant", ["full", "lora, text encoder"])
def test_the_checkpoint_units_are_what_gradient_checkpointing_recomputes(built, variant):
    case = built[variant]
    real = case.model
    names = {module: name for name, module in real.named_modules()}
    recomputed: list[str] = []

    def spy(owner: torch.nn.Module, original):
        def checkpointed(function, *args):
            recomputed.append(names[function if isinstance(function, torch.nn.Module) else owner])  # Diffusers / Transformers
            return original(function, *args)
        return checkpointed

    real.train()
    assert switch_checkpointing(real, True)  # as the runner does
    try:
        for module in real.modules():
            if getattr(module, "_gradient_checkpointing_func", None) is not None:
                module._gradient_checkpointing_func = spy(module, module._gradient_checkpointing_func)
        case.run.compute_loss(real, case.data.collate([case.data.train[0]]))
    finally:
        real.unet.disable_gradient_checkpointing()
        if real.text_encoder is not None:
            switch_checkpointing(real.text_encoder, False)
    units = case.plan.plan_checkpoint_units(case.plan.plan_freeze(case.plan.plan_model())[0])
    assert sorted(units) == sorted(set(recomputed)) and len(units) == len(set(units))
    assert any(".transformer_blocks." in u for u in units) and any(".resnets." in u for u in units)
    assert any(u.startswith("text_encoder.") and u.endswith(".layers.0") for u in units) == (variant == "lora, text encoder")


def test_the_extras_are_the_frozen_parts_the_run_keeps_on_the_device(built):
    for variant in ("full", "full, text encoder"):
        run, plan = built[variant].run, built[variant].plan
        meta = plan.plan_model()
        extras = plan.plan_extras(meta)
        vae = sum(t.numel() * t.element_size() for t in [*run.vae.parameters(), *run.vae.buffers()])
        assert extras["vae"] == vae
        if variant == "full":
            encoder = run.text_encoder
            assert extras["text_encoder"] == sum(t.numel() * t.element_size() for t in [*encoder.parameters(), *encoder.buffers()])
        else:
            assert "text_encoder" not in extras  # it is the trained model's


def test_the_data_is_counted_as_the_run_reports_it(built):
    for variant in ("full", "no prior"):
        data, plan = built[variant].data, built[variant].plan
        planned = plan.plan_data()
        assert (planned.train_examples, planned.eval_examples) == (data.report.train_examples, data.report.eval_examples) == (3, 3)
        assert planned.amount["images"] == 3 and planned.guidance.minimum == 10 and planned.guidance.unit == "images"
        assert planned.mean_fill == 1.0 and planned.unavailable is None
        assert planned.amount.get("class_images") == (2 if variant == "full" else None)
        assert not any(w.startswith("only 3 instance images") for w in planned.warnings)  # the plan says it from the guidance


def test_missing_photos_leave_the_data_unavailable_and_the_model_planned(tmp_path):
    plan = task_of(TINY.format(extra="freeze: {strategy: full}\n").replace(
        "data: {format: synthetic-subject, instance_images: 3, num_class_images: 2, resolution: 32}",
        "data: {format: dreambooth, instance_dir: nowhere, instance_prompt: a photo of sks dog, resolution: 32}"), tmp_path)
    planned = plan.plan_data()
    assert planned.train_examples is None and "no such folder" in planned.unavailable
    assert sum(p.numel() for p in plan.plan_model().parameters()) > 0  # a tokenizer from the recipe's prompts


def test_the_dog_recipe_plans_sd15_from_the_carried_configs(tmp_path):
    """The well-known sizes: UNet 859.5M, CLIP ViT-L/14 text encoder 123.1M, VAE 83.7M (kept in bf16 on the GPU)."""
    task = file_task(ROOT / "recipes" / "sd-dreambooth-dog.yaml", tmp_path)
    model = task.plan_model()
    assert task.planned.where == "carried" and model.text_encoder is None
    assert sum(p.numel() for p in model.unet.parameters()) == 859_520_964
    model, report = task.plan_freeze(model)
    assert report.trainable == 1_594_368  # LoRA r=8 on to_q, to_k, to_v, to_out.0
    extras = task.plan_extras(model)
    assert extras["vae"] == 83_653_863 * 2 and extras["text_encoder"] == 123_060_480 * 2 + 77 * 8  # bf16, and position ids
    model.to(torch.bfloat16).train()
    for batch_size in (1, 2):
        loss = task.plan_forward(model, batch_size)
        assert loss.device.type == "meta" and loss.shape == ()
    units = task.plan_checkpoint_units(model)
    assert len(units) == 21 + 16  # resnets (the mid block's first excepted) and transformer blocks
    data = task.plan_data()
    assert data.train_examples == 5 and data.amount == {"images": 5.0, "class_images": 100.0}


def test_sd15_with_its_text_encoder_trained(tmp_path):
    task = file_task(ROOT / "recipes" / "sd-dreambooth-dog.yaml", tmp_path, training={"train_text_encoder": True})
    model = task.plan_model()
    assert sum(p.numel() for p in model.text_encoder.parameters()) == 123_060_480
    model, report = task.plan_freeze(model)
    assert report.trainable > 1_594_368 and "text_encoder" not in task.plan_extras(model)
    model.to(torch.bfloat16).train()
    for batch_size in (1, 2):
        assert task.plan_forward(model, batch_size).shape == ()
    assert len(task.plan_checkpoint_units(model)) == 37 + 12


@pytest.mark.parametrize(("base", "unet", "text"), [
    ("stabilityai/stable-diffusion-2-1-base", 865_910_724, 340_387_840),
    ("runwayml/stable-diffusion-v1-5", 859_520_964, 123_060_480),  # the same architecture as the carried SD 1.5
])
def test_other_well_known_bases(tmp_path, base, unet, text):
    task = file_task(ROOT / "recipes" / "sd-dreambooth-dog.yaml", tmp_path, model={"base": base},
                     training={"train_text_encoder": True})
    model = task.plan_model()
    assert sum(p.numel() for p in model.unet.parameters()) == unet
    assert sum(p.numel() for p in model.text_encoder.parameters()) == text


def test_a_local_pipeline_folder_gives_its_own_configs(tmp_path, tiny_pipeline_dir):
    from diffusers import UNet2DConditionModel

    task = file_task(ROOT / "recipes" / "sd-dreambooth-dog.yaml", tmp_path, model={"base": str(tiny_pipeline_dir)})
    model = task.plan_model()
    assert task.planned.where == str(tiny_pipeline_dir)
    assert signature(model.unet) == signature(UNet2DConditionModel.from_pretrained(tiny_pipeline_dir, subfolder="unet"))


def test_a_base_in_the_hugging_face_cache_gives_its_configs_without_a_download(tmp_path, tiny_pipeline_dir):
    """The cache's layout (models--org--name/snapshots/REV, refs/main) holding only the three configs."""
    import shutil

    from diffusers import UNet2DConditionModel
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / "models--ftrecipe-tests--cached-sd"
    snapshot = repo / "snapshots" / ("0" * 40)
    for part in ("unet", "text_encoder", "vae"):
        (snapshot / part).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny_pipeline_dir / part / "config.json", snapshot / part / "config.json")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("0" * 40)
    task = file_task(ROOT / "recipes" / "sd-dreambooth-dog.yaml", tmp_path, model={"base": "ftrecipe-tests/cached-sd"})
    model = task.plan_model()
    assert task.planned.where == "cache"
    assert signature(model.unet) == signature(UNet2DConditionModel.from_pretrained(tiny_pipeline_dir, subfolder="unet"))


def test_an_unknown_base_says_where_it_looked(tmp_path):
    task = file_task(ROOT / "recipes" / "sd-dreambooth-dog.yaml", tmp_path, model={"base": "someone/unknown-diffusion"})
    with pytest.raises(RecipeRuntimeError) as caught:
        task.plan_model()
    assert caught.value.path == ("model", "base")
    assert "Hugging Face cache" in caught.value.message and "hf download someone/unknown-diffusion" in caught.value.message


def test_the_frozen_parts_dtype_follows_the_target_gpu_not_this_machine(tmp_path):
    from ftrecipe_diffusion.planning import planned_weight_dtype

    recipe = file_task(ROOT / "recipes" / "sd-dreambooth-dog.yaml", tmp_path).recipe  # bf16-mixed
    assert planned_weight_dtype(recipe) == torch.bfloat16
    hardware = lambda **values: recipe.model_copy(update={"hardware": recipe.hardware.model_copy(update=values)})  # noqa: E731
    assert planned_weight_dtype(hardware(precision="fp16-mixed")) == torch.float16
    assert planned_weight_dtype(hardware(precision="fp32")) == torch.float32
    assert planned_weight_dtype(hardware(accelerator="cpu")) == torch.float32
