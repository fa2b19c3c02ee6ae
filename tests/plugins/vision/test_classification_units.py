"""The image-classification modality's parts, in process: readers and the data report, metrics on known
inputs, seeded augmentation, head modes, the freeze grammar (BatchNorm statistics under transfer, LoRA on
convolutions), weights from a local file, the plan, and validate's located refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ftrecipe.freeze import apply_freeze_plan
from ftrecipe.plugin import EpochIndex, RecipeRuntimeError, TaskContext
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_text
from ftrecipe_vision.classification import architecture as arch
from ftrecipe_vision.classification import metrics
from ftrecipe_vision.classification.augment import AugmentChain
from ftrecipe_vision.classification.batchnorm import frozen_batchnorms
from ftrecipe_vision.classification.readers import read_folder, read_imagefolder, read_manifest, read_synthetic
from ftrecipe_vision.classification.task import ImageClassificationTask

TINY = "model: {modality: image-classification, base: resnet18, init: scratch, config: {blocks: 1}, image_size: 32}\n"
SHAPES = "data: {format: synthetic, train_size: 24, eval_size: 6, size: 32}\n"


def recipe_of(text: str):
    result = validate_text(text, source="r.yaml")
    assert result.ok, [d.text() for d in result.diagnostics]
    return result.recipe


def problems(text: str) -> list[str]:
    return [d.text() for d in validate_text(text, source="r.yaml").diagnostics]


def task_of(text: str, tmp_path: Path, *, smoke: bool = False) -> ImageClassificationTask:
    ctx = TaskContext(recipe=recipe_of(text), registry=get_registry(), base_dir=tmp_path, output_dir=tmp_path / "run",
                      smoke=smoke, log=lambda message: None, warn=lambda message: None)
    return ImageClassificationTask(ctx)


def picture(path: Path, size: tuple[int, int] = (40, 36), colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


# -- readers -----------------------------------------------------------------------------------------------

def section(text: str):
    return recipe_of(TINY + text).data


def test_a_folder_per_class_with_bad_pictures_listed_and_files_beside_left_alone(tmp_path):
    for i in range(3):
        picture(tmp_path / "photos" / "cat" / f"{i}.png")
        picture(tmp_path / "photos" / "dog" / "nested" / f"{i}.jpg")
    (tmp_path / "photos" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    picture(tmp_path / "photos" / "dog" / "tiny.png", size=(12, 50))
    (tmp_path / "photos" / "LICENSE.md").write_text("CC BY 4.0")
    splits = read_folder(section("data: {format: folder, train: photos, eval_fraction: 0}\n"), base_dir=tmp_path, seed=0, smoke=False)
    assert [row["label"] for row in splits.train] == ["cat", "dog"] * 3  # interleaved: limit and --smoke keep both
    report = splits.report
    assert report.details["classes"] == ["cat", "dog"] and report.details["train_images_per_class"] == {"cat": 3, "dog": 3}
    skipped = {Path(where).name: why for where, why in report.skipped.items()}
    assert skipped["broken.jpg"].startswith("not a readable image") and skipped["tiny.png"].startswith("too small: 12x50 px")
    assert "at least 10 per class" in report.warnings[0] and "cat (3)" in report.warnings[0]
    with pytest.raises(RecipeRuntimeError) as failed:
        read_folder(section("data: {format: folder, train: photos, on_error: fail}\n"), base_dir=tmp_path, seed=0, smoke=False)
    assert failed.value.path == ("data", "train") and "broken.jpg: not a readable image" in failed.value.message


def test_a_manifest_resolves_paths_beside_it_and_skips_what_it_cannot_use(tmp_path):
    picture(tmp_path / "data" / "img" / "a.png")
    picture(tmp_path / "data" / "img" / "b.png")
    (tmp_path / "data" / "train.csv").write_text("path,class\nimg/a.png,cat\nimg/b.png,dog\nimg/missing.png,dog\nimg/a.png,\n")
    splits = read_manifest(section("data: {format: manifest, train: data/train.csv, eval_fraction: 0}\n"), base_dir=tmp_path, seed=0, smoke=False)
    assert [(Path(r["image"]).name, r["label"]) for r in splits.train] == [("a.png", "cat"), ("b.png", "dog")]
    reasons = sorted(splits.report.skipped.values())
    assert reasons[0] == "no label" and reasons[1].startswith("no such picture")
    with pytest.raises(RecipeRuntimeError, match="no label column"):
        (tmp_path / "odd.jsonl").write_text('{"path": "data/img/a.png", "kind": "cat"}\n')
        read_manifest(section("data: {format: manifest, train: odd.jsonl}\n"), base_dir=tmp_path, seed=0, smoke=False)


def test_hugging_face_imagefolder_splits_and_metadata(tmp_path):
    root = tmp_path / "ds"
    for split in ("train", "validation"):
        for label in ("cat", "dog"):
            picture(root / split / label / f"{split}-{label}.png")
    splits = read_imagefolder(section("data: {format: imagefolder, train: ds}\n"), base_dir=tmp_path, seed=0, smoke=False)
    assert [r["label"] for r in splits.train] == ["cat", "dog"] and [r["label"] for r in splits.eval] == ["cat", "dog"]
    assert all("/validation/" in r["image"] for r in splits.eval)

    flat = tmp_path / "flat"
    picture(flat / "x.png")
    picture(flat / "y.png")
    (flat / "metadata.jsonl").write_text('{"file_name": "x.png", "species": "cat"}\n{"file_name": "y.png", "species": "dog"}\n')
    text = "data: {format: imagefolder, train: flat, eval_fraction: 0, columns: {label: species}}\n"
    splits = read_imagefolder(section(text), base_dir=tmp_path, seed=0, smoke=False)
    assert [r["label"] for r in splits.train] == ["cat", "dog"] and flat / "metadata.jsonl" in splits.files


def test_drawn_shapes_are_labelled_by_their_shape_and_the_same_for_a_seed():
    data = section("data: {format: synthetic, train_size: 30, eval_size: 9, size: 32}\n")
    one, two = read_synthetic(data, base_dir=Path("."), seed=3, smoke=False), read_synthetic(data, base_dir=Path("."), seed=3, smoke=False)
    assert len(one.train) == 30 and len(one.eval) == 9 and set(one.report.details["classes"]) == {"circle", "square", "triangle"}
    assert all(np.array_equal(a["image"], b["image"]) and a["label"] == b["label"] for a, b in zip(one.train, two.train))


# -- metrics -----------------------------------------------------------------------------------------------

def test_metrics_on_known_inputs():
    predictions, references = [0, 0, 1, 2, 2, 1], [0, 1, 1, 2, 0, 1]
    assert metrics.accuracy(predictions, references) == pytest.approx(4 / 6)
    # F1: class 0 2*1/(2+1+1)=0.5, class 1 2*2/(4+0+1)=0.8, class 2 2*1/(2+1+0)=2/3
    assert metrics.macro_f1(predictions, references) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics.top_k_accuracy([[3, 1, 0], [2, 4, 5]], [0, 1]) == 0.5
    matrix = metrics.confusion_matrix(predictions, references, 3)
    assert matrix.tolist() == [[1, 0, 1], [1, 2, 0], [0, 0, 1]]
    assert metrics.per_class_accuracy(matrix, ["a", "b", "c"]) == {"a": 0.5, "b": pytest.approx(2 / 3), "c": 1.0}
    assert metrics.load_f1().compute(predictions=predictions, references=references)["f1"] == pytest.approx(0.6555555)
    assert metrics.load_top5_accuracy().compute(predictions=[[1, 2, 3, 4, 5]], references=[5]) == {"top5_accuracy": 1.0}
    assert metrics.confusion_picture(matrix, ["a", "b", "c"], "t").size[0] > 100


# -- augmentation ------------------------------------------------------------------------------------------

def test_augmentation_is_a_function_of_seed_epoch_and_index_and_leaves_the_global_generator_alone(tmp_path):
    text = TINY + SHAPES.replace("}", ", augment: [{name: random_resized_crop}, {name: flip}, {name: color_jitter, hue: 0.1}, "
                                      "{name: rotation}]}")
    task = task_of(text, tmp_path)
    dataset = task.build_data().train
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    first = np.asarray(dataset.image(EpochIndex(3, 1)))
    assert torch.rand(1) == expected_next  # the seeded steps ran inside fork_rng
    again = task_of(text, tmp_path).build_data().train  # a resumed run rebuilds the data
    assert np.array_equal(first, np.asarray(again.image(EpochIndex(3, 1))))
    assert not np.array_equal(first, np.asarray(dataset.image(EpochIndex(3, 2))))  # another epoch, another picture
    assert first.shape == (32, 32, 3)
    assert len(AugmentChain.from_recipe(task.recipe, task.ctx.registry)) == 4


# -- the model: heads, anatomy, freezing -------------------------------------------------------------------

def test_head_modes_and_the_last_layer_of_other_families():
    assert arch.Architecture("resnet18", 7, blocks=1).build().fc.out_features == 7
    appended = arch.Architecture("resnet18", 1000, blocks=1, append=2).build()
    assert isinstance(appended.fc, torch.nn.Sequential) and appended.fc[2].out_features == 2 and appended.fc[0].out_features == 1000
    with torch.device("meta"):
        assert arch.head_path(arch.Architecture("efficientnet_b0", 3).build()) == "classifier.1"
        assert arch.head_path(arch.Architecture("vit_b_16", 3).build()) == "heads.head"
        squeeze = arch.Architecture("squeezenet1_1", 3).build()
        assert arch.head_path(squeeze) == "classifier.1"
        arch.replace_head(squeeze, 5)
        assert squeeze.classifier[1].out_channels == 5
    assert arch.python_path("classifier.1") == "model.classifier[1]"


def test_transfer_keeps_the_frozen_batchnorm_statistics_and_says_so(tmp_path):
    task = task_of(TINY + SHAPES, tmp_path)
    task.build_data()
    model = task.build_model()
    frozen, report = apply_freeze_plan(model, task.recipe.model_copy(update={"freeze": task.recipe.freeze.model_copy(
        update={"strategy": "transfer"})}), task.anatomy(model))
    assert {n for n, p in frozen.named_parameters() if p.requires_grad} == {"fc.weight", "fc.bias"}
    logged: list[str] = []
    task.ctx.log = logged.append
    task.apply_speedups(frozen)
    assert len(task.frozen_batchnorms) == 12 and "BatchNorm statistics" in logged[0]
    before = frozen.bn1.running_mean.clone()
    frozen.train()  # what the runner does after each evaluation
    frozen(torch.randn(4, 3, 32, 32) * 3 + 1)
    assert torch.equal(frozen.bn1.running_mean, before) and not frozen.bn1.training


def test_partial_freezes_resnet_stages_and_blocks_by_range(tmp_path):
    text = TINY + "freeze: {strategy: partial, freeze_layers: {first: 2}, freeze: ['conv1.*']}\n" + SHAPES
    task = task_of(text, tmp_path)
    task.build_data()
    model = task.build_model()
    anatomy = task.anatomy(model)
    assert anatomy.stacks["layers"] == ["layer1", "layer2", "layer3", "layer4"] and anatomy.stacks["layer3"] == ["layer3.0"]
    frozen, report = apply_freeze_plan(model, task.recipe, anatomy)
    assert report.frozen_stacks == {"layers": [0, 1]}
    training = {n.split(".")[0] for n, p in frozen.named_parameters() if p.requires_grad}
    assert training == {"bn1", "layer3", "layer4", "fc"}
    assert {n.split(".")[0] for n in frozen_batchnorms(frozen)} == {"layer1", "layer2"}


def test_lora_adapts_the_convolutions_and_trains_the_new_head_in_full(tmp_path):
    task = task_of(TINY + "freeze: {strategy: lora, lora: {r: 2, alpha: 4}}\n" + SHAPES, tmp_path)
    task.build_data()
    model = task.build_model()
    wrapped, report = apply_freeze_plan(model, task.recipe, task.anatomy(model))
    trainable = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert any("conv1.lora_A" in n for n in trainable) and any("modules_to_save" in n and "fc" in n for n in trainable)
    assert wrapped(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_pretrained_weights_from_a_local_file_get_a_new_head(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    source = torchvision.models.resnet18(num_classes=10)
    save_file(source.state_dict(), str(tmp_path / "mine.safetensors"))
    text = ("model: {modality: image-classification, base: resnet18, weights: mine.safetensors, image_size: 32}\n"
            "head: {labels: [circle, square, triangle]}\nfreeze: {strategy: transfer}\n" + SHAPES)
    task = task_of(text, tmp_path)
    task.build_data()
    model = task.build_model()
    assert torch.equal(model.conv1.weight, source.conv1.weight) and model.fc.out_features == 3
    assert task.architecture.snippet("fc").count("get_model('resnet18', weights=None, num_classes=3)") == 1


def test_weights_missing_offline_are_a_located_error_before_torch(tmp_path, monkeypatch):
    from ftrecipe_vision.pretrained import weights_run_check as weights_here

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    recipe = recipe_of("model: {modality: image-classification, base: resnet50, weights: IMAGENET1K_V2}\n"
                       "data: {format: folder, train: photos}\n")
    (problem,) = weights_here(recipe, tmp_path)
    assert problem.path == ("model", "weights") and "not in torch's cache" in problem.message
    assert "ResNet50_Weights.IMAGENET1K_V2" in problem.message


# -- the plan ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("head", ["replace", "append"])
def test_the_plan_builds_the_run_s_model_on_meta_and_runs_its_forward(tmp_path, head):
    text = TINY + f"head: {{mode: {head}}}\n" + SHAPES
    run = task_of(text, tmp_path)
    run.build_data()
    built = {n: tuple(p.shape) for n, p in run.build_model().named_parameters()}
    plan = task_of(text, tmp_path)
    planned = plan.plan_model()
    assert {n: tuple(p.shape) for n, p in planned.named_parameters()} == built and next(planned.parameters()).is_meta
    planned.train()
    loss = plan.plan_forward(planned, 2)
    assert loss.is_meta and loss.shape == ()
    data = plan.plan_data()
    assert data.train_examples == 24 and sum(data.balance.values()) == 24 and data.guidance.minimum == 30


# -- validate ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("model: {modality: image-classification, base: resnet05}\n", "model.base: 'resnet05' is not a torchvision classification model; did you mean resnet50"),
    ("model: {modality: image-classification, base: resnet18, init: scratch, weights: DEFAULT}\n", "model.weights: init: scratch starts"),
    ("model: {modality: image-classification, base: resnet18, init: scratch}\nfreeze: {strategy: transfer}\n", "freeze.strategy: transfer freezes a backbone"),
    ("model: {modality: image-classification, base: resnet18}\nfreeze: {strategy: qlora}\n", "freeze.strategy: torchvision classifiers train in full precision"),
    ("model: {modality: image-classification, base: resnet18, init: scratch}\nhead: {mode: keep}\n", "head.mode: a model from scratch has no trained head"),
    ("model: {modality: image-classification, base: resnet18}\ntraining: {gradient_checkpointing: true}\n", "training.gradient_checkpointing: not read by"),
    ("model: {modality: image-classification, base: resnet18, config: {blocks: 1}}\n", "model.config: config changes the architecture"),
    ("model: {modality: image-classification, base: resnet18}\nfreeze: {strategy: lora}\noutput: {save: adapter}\n", "output.save: a torchvision model is saved as one state dict"),
])
def test_mistakes_are_refused_at_their_key(text, expected):
    found = problems(text + "data: {format: synthetic}\n")
    assert any(expected in line for line in found), found


def test_registration_stays_torch_free():
    import subprocess
    import sys

    code = ("import sys, ftrecipe_vision.classification.plugin, ftrecipe_vision.classification.readers\n"
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_keep_uses_the_weights_classes_which_the_data_must_name(tmp_path):
    task = task_of("model: {modality: image-classification, base: resnet18, weights: IMAGENET1K_V1, image_size: 32}\n"
                   "head: {mode: keep}\n" + SHAPES, tmp_path)
    with pytest.raises(RecipeRuntimeError) as refused:
        task.build_data()  # the weights entry knows its 1000 classes: nothing is downloaded
    assert refused.value.path == ("head", "mode") and "'circle' is not one of the head's classes (tench, goldfish" in refused.value.message


def test_the_starter_recipe_is_valid():
    from ftrecipe_vision.classification.plugin import STARTER

    assert recipe_of(STARTER).model.base == "resnet50"


def test_lora_with_train_globs_trains_those_modules_in_full_and_no_namesake(tmp_path):
    """``freeze.train`` beside LoRA: the named block trains in full (no adapter on it), every other conv1 keeps
    only its adapter."""
    task = task_of(TINY + "freeze: {strategy: lora, lora: {r: 2, alpha: 4}, train: ['layer4.0.*']}\n" + SHAPES, tmp_path)
    task.build_data()
    model = task.build_model()
    wrapped, _ = apply_freeze_plan(model, task.recipe, task.anatomy(model))
    in_full = {n.split(".modules_to_save")[0].removeprefix("base_model.model.")
               for n, p in wrapped.named_parameters() if p.requires_grad and "modules_to_save" in n}
    assert {"fc"} | {m for m in in_full if m.startswith("layer4.0.")} == in_full and "layer4.0.conv1" in in_full
    trained = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert not any(n.startswith("base_model.model.layer4.0.") and "lora_" in n for n in trained)
    assert any("layer1.0.conv1.lora_A" in n for n in trained)
    assert wrapped(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_the_head_gets_no_adapter_even_when_nothing_trains_in_full(tmp_path):
    """What ``head: keep`` hands ``add_adapters`` (no modules_to_save): the head stays as trained, only the
    body's layers get adapters."""
    from peft import LoraConfig

    task = task_of(TINY + SHAPES, tmp_path)
    task.build_data()
    wrapped = task.add_adapters(task.build_model(), LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"))
    trained = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert trained and all("lora_" in n for n in trained) and not any(".fc." in n for n in trained)
