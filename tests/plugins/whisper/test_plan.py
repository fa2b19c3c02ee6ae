"""`ftrecipe plan`'s hooks in the Whisper plugin: the meta model is the one build_model loads (names, shapes,
dtypes), the meta forward pass over a full window gives the loss, the clips and hours are build_data's, and
the configs the plugin carries are the real checkpoints'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ftrecipe.plan.measure import forward_as_planned
from ftrecipe.plugin import RecipeRuntimeError, TaskContext
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_file
from ftrecipe_whisper.task import WhisperTask
from tests.conftest import ROOT
from tests.plugins.whisper.test_runs import TINY, recipe, synthetic_data

CALLCENTER = ROOT / "recipes" / "whisper-callcenter.yaml"
LORA = "  strategy: lora\n  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n"


def task_of(path: Path, tmp: Path, *overrides: str) -> WhisperTask:
    result = validate_file(path, overrides=overrides)
    assert result.ok, [str(d) for d in result.diagnostics]
    return WhisperTask(TaskContext(recipe=result.recipe, registry=get_registry(), base_dir=result.base_dir,
                                   output_dir=tmp / "out", log=lambda message: None))


def signature(model: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    return {name: (tuple(p.shape), p.dtype) for name, p in model.named_parameters()}


def on_base(path: Path, base: Path) -> Path:
    """The test recipe on a saved checkpoint instead of a scratch model."""
    path.write_text(path.read_text().replace(TINY, f"  base: {base}\n"))
    return path


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory) -> Path:
    """A tiny 'pre-trained' Whisper checkpoint on disk, as test_runs makes it."""
    from ftrecipe_whisper.synthetic import VOCABULARY
    from ftrecipe_whisper.tiny import build_tiny_whisper

    return build_tiny_whisper(list(VOCABULARY) * 3, tmp_path_factory.mktemp("whisper"), chunk_length=2, d_model=32, ffn_dim=64)


@pytest.fixture(scope="module")
def half_dir(whisper_dir, tmp_path_factory) -> Path:
    """The same checkpoint saved in float16, as whisper-large-v3 is on the hub."""
    import shutil

    from transformers import WhisperForConditionalGeneration

    out = tmp_path_factory.mktemp("half")
    shutil.copytree(whisper_dir, out, dirs_exist_ok=True)
    WhisperForConditionalGeneration.from_pretrained(whisper_dir, dtype=torch.float16).save_pretrained(out)
    return out


def case(name: str, tmp: Path, whisper_dir: Path, half_dir: Path) -> tuple[Path, tuple[str, ...]]:
    if name == "scratch":
        return recipe(tmp, synthetic_data()), ()
    if name == "partial":
        return on_base(recipe(tmp, synthetic_data(), "  strategy: partial\n  freeze: ['model.encoder.*']\n"), whisper_dir), ()
    if name == "lora":
        return on_base(recipe(tmp, synthetic_data(), LORA), whisper_dir), ()
    if name == "bf16":
        return on_base(recipe(tmp, synthetic_data()), whisper_dir), ("model.dtype=bfloat16",)
    return on_base(recipe(tmp, synthetic_data()), half_dir), ()  # float16 checkpoint, dtype auto


CASES = ["scratch", "partial", "lora", "bf16", "float16-checkpoint"]


@pytest.mark.parametrize("name", CASES)
def test_the_planned_model_is_the_built_model(name, tmp_path, whisper_dir, half_dir):
    path, overrides = case(name, tmp_path, whisper_dir, half_dir)
    run = task_of(path, tmp_path, *overrides)
    run.build_data()
    built = run.build_model()
    planned = task_of(path, tmp_path, *overrides).plan_model()
    assert all(p.device.type == "meta" for p in planned.parameters())
    assert signature(planned) == signature(built)
    if name == "float16-checkpoint":  # model.dtype auto on a float16 file: float32 master weights to train
        assert {p.dtype for p in built.parameters()} == {torch.float32}
        assert run.saved_dtype() == torch.float16  # ... and saved back in the checkpoint's float16


@pytest.mark.parametrize("name", ["partial", "lora"])
def test_the_planned_freeze_trains_what_the_run_trains(name, tmp_path, whisper_dir, half_dir):
    path, _ = case(name, tmp_path, whisper_dir, half_dir)
    run = task_of(path, tmp_path)
    run.build_data()
    built, built_report = run.plan_freeze(run.build_model())
    plan = task_of(path, tmp_path)
    planned, planned_report = plan.plan_freeze(plan.plan_model())
    assert planned_report.as_dict() == built_report.as_dict()
    assert {n for n, p in planned.named_parameters() if p.requires_grad} == {n for n, p in built.named_parameters() if p.requires_grad}


def frozen_for_training(task: WhisperTask, dtype: torch.dtype | None = None) -> torch.nn.Module:
    """What the core hands plan_forward: the frozen meta model in training mode (in the compute dtype)."""
    model, _ = task.plan_freeze(task.plan_model())
    return (model.to(dtype) if dtype else model).train()


@pytest.mark.parametrize("name", CASES)
def test_the_forward_pass_runs_on_meta_with_a_loss(name, tmp_path, whisper_dir, half_dir):
    path, overrides = case(name, tmp_path, whisper_dir, half_dir)
    task = task_of(path, tmp_path, *overrides)
    loss = forward_as_planned(task, frozen_for_training(task), 2)
    assert loss.device.type == "meta" and loss.shape == ()


@pytest.mark.parametrize("base, dtype", [("openai/whisper-small", None), ("openai/whisper-small", torch.bfloat16),
                                         ("openai/whisper-large-v3", None)])
def test_the_forward_pass_of_a_carried_base_hears_a_full_window(base, dtype, tmp_path):
    """30 s of features (3000 frames, 128 mel bins for large-v3) and 448 label tokens, on meta."""
    task = task_of(CALLCENTER, tmp_path, f"model.base={base}")
    model = frozen_for_training(task, dtype)
    seen = {}
    model.get_encoder().conv1.register_forward_hook(lambda m, args, out: seen.update(features=args[0].shape))
    loss = forward_as_planned(task, model, 1)
    assert loss.device.type == "meta" and loss.shape == ()
    config = model.config
    assert tuple(seen["features"]) == (1, config.num_mel_bins, 3000)
    assert config.max_target_positions == 448


def test_checkpoint_units_are_the_layers_gradient_checkpointing_wraps(tmp_path):
    from transformers.modeling_layers import GradientCheckpointingLayer

    task = task_of(CALLCENTER, tmp_path)
    model = frozen_for_training(task)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(wrapped) == 24 and task.plan_checkpoint_units(model) == wrapped  # 12 encoder and 12 decoder layers


# -- the data --------------------------------------------------------------------------------------
def test_synthetic_clips_and_hours_are_build_datas(tmp_path):
    path = recipe(tmp_path, synthetic_data())
    bundle = task_of(path, tmp_path).build_data()
    data = task_of(path, tmp_path).plan_data()
    assert (data.train_examples, data.eval_examples) == (bundle.report.train_examples, bundle.report.eval_examples) == (16, 4)
    assert data.amount["audio_hours"] == pytest.approx(sum(r["duration"] for r in bundle.train.rows) / 3600)
    assert data.mean_fill == 1.0 and data.overlap == 0


@pytest.mark.parametrize("name", ["scratch", "partial"])
def test_the_labels_are_as_long_as_the_longest_transcript_the_collator_pads_to(name, tmp_path, whisper_dir, half_dir):
    path, overrides = case(name, tmp_path, whisper_dir, half_dir)
    run = task_of(path, tmp_path, *overrides)
    bundle = run.build_data()
    longest = max(len(run.processor.tokenizer(row["text"]).input_ids) for row in bundle.train.rows)
    plan = task_of(path, tmp_path, *overrides).plan()
    plan.config  # noqa: B018 - a scratch plan builds its processor here, as plan_model does
    assert plan.label_length(448) == longest  # the local tokenizer counts exactly
    assert plan.label_length(3) == 3  # never beyond what the decoder takes


def test_without_the_data_the_labels_are_as_long_as_the_decoder_takes(tmp_path, whisper_dir):
    path = on_base(recipe(tmp_path, synthetic_data()), whisper_dir)
    plan = task_of(path, tmp_path).plan()
    plan.task._plan_splits = None  # as when the data is not on this machine
    assert plan.label_length(448) == 448


def test_clips_longer_than_the_window_are_left_out_as_build_data_does(tmp_path):
    """The tiny model hears 2 s: the 3 s clips are skipped; one evaluation clip is also a training clip. Its
    decoder takes 128 tokens: the 140-word transcript is skipped too."""
    sr = 16000
    for i, seconds in enumerate([1, 1, 3, 1, 3, 1, 1]):
        sf.write(tmp_path / f"c{i}.wav", 0.1 * np.sin(np.arange(seconds * sr) * (0.05 + 0.01 * i)), sr)
    (tmp_path / "train.csv").write_text("audio,text\n" + "".join(f"c{i}.wav,word {i}\n" for i in range(5))
                                        + "c6.wav," + "hello " * 140 + "\n")
    (tmp_path / "eval.csv").write_text("audio,text\nc0.wav,word 0\nc5.wav,word 5\n")
    path = recipe(tmp_path, "  format: manifest\n  train: train.csv\n  eval: eval.csv\n")
    bundle = task_of(path, tmp_path).build_data()
    data = task_of(path, tmp_path).plan_data()
    assert (data.train_examples, data.eval_examples) == (bundle.report.train_examples, bundle.report.eval_examples) == (3, 2)
    assert bundle.report.details["transcripts_too_long"] == 1
    assert data.amount["audio_hours"] == pytest.approx(3 / 3600)
    assert data.overlap == 1
    assert any("2 clip(s) are longer than the model's 2 s window" in w for w in data.warnings)
    assert any("1 transcript(s) are longer than the decoder takes (128 tokens) and are skipped" in w for w in data.warnings)


def test_the_seed_figure_is_50_hours_said_once(tmp_path):
    data = task_of(CALLCENTER, tmp_path).plan_data()
    assert data.guidance is not None and (data.guidance.minimum, data.guidance.unit) == (50.0, "audio_hours")
    assert "50 hours" in data.guidance.source
    assert (data.train_examples, data.eval_examples, data.overlap) == (32, 8, 0)  # the sample's separate manifests
    assert 0 < data.amount["audio_hours"] < 0.01
    assert not any("of training audio" in w for w in data.warnings)  # the plan warns from the guidance instead


def test_a_base_with_no_config_anywhere_is_a_located_error(tmp_path):
    task = task_of(CALLCENTER, tmp_path, "model.base=acme/whisper-nowhere")
    with pytest.raises(RecipeRuntimeError) as caught:
        task.plan_model()
    assert caught.value.path == ("model", "base")
    assert "no config for 'acme/whisper-nowhere' here" in caught.value.message and "config.json" in caught.value.message
    assert task.plan_data().train_examples == 32  # the clips are still counted (a 30 s window assumed)


# -- the carried configs ---------------------------------------------------------------------------
PARAMETERS = {  # the checkpoints' well-known sizes
    "openai/whisper-tiny": 37_760_640,
    "openai/whisper-base": 72_593_920,
    "openai/whisper-small": 241_734_912,
    "openai/whisper-medium": 763_857_920,
    "openai/whisper-large-v2": 1_543_304_960,
    "openai/whisper-large-v3": 1_543_490_560,
    "openai/whisper-large-v3-turbo": 808_878_080,
}


@pytest.mark.parametrize("base", list(PARAMETERS))
def test_the_carried_configs_give_the_real_models_sizes(base, tmp_path):
    model = task_of(CALLCENTER, tmp_path, f"model.base={base}").plan_model()
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[base]


def test_every_carried_config_is_checked():
    from ftrecipe_whisper.planning import CONFIGS

    assert sorted(p.name for p in CONFIGS.glob("*.json")) == sorted(b.replace("/", "--") + ".json" for b in PARAMETERS)


def test_large_v3_plans_float32_master_weights_unless_half_is_asked_for(tmp_path):
    """whisper-large-v3 is stored in float16; ``model.dtype: auto`` trains (and so plans) float32 weights,
    as full fine-tuning under mixed precision needs; ``model.dtype: float16`` keeps the file's half weights."""
    v3 = task_of(CALLCENTER, tmp_path, "model.base=openai/whisper-large-v3").plan_model()
    assert {p.dtype for p in v3.parameters()} == {torch.float32} and v3.config.num_mel_bins == 128
    half = task_of(CALLCENTER, tmp_path, "model.base=openai/whisper-large-v3", "model.dtype=float16").plan_model()
    assert {p.dtype for p in half.parameters()} == {torch.float16}
