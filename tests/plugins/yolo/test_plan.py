"""`ftrecipe plan`'s questions to the YOLO task, answered against Ultralytics' own trainer: the meta detector
is the one the trainer builds, frozen as its ``freeze`` argument freezes it (what summary.json reports),
the EMA is the trainer's, the meta forward runs, and the data is counted as the run reports it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ftrecipe.plugin import RecipeRuntimeError, TaskContext
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_text
from ftrecipe_yolo.task import YoloTask
from tests.conftest import ROOT

SMALL = """\
model: {{modality: yolo, base: yolo11n.yaml, init: scratch, image_size: {size}}}
head: {{mode: replace}}
data: {{format: synthetic, train_size: 8, eval_size: 4, image_size: 64}}
training: {{epochs: 1, batch_size: 4, nominal_batch: 4}}
hardware: {{accelerator: cpu}}
{extra}"""

VARIANTS = {
    "full": "",
    "partial": 'freeze: {strategy: partial, freeze: [neck, "model.23.cv2"], freeze_layers: {stack: backbone, first: 3}}\n',
    "partial, head only": "freeze: {strategy: partial, freeze: [backbone, neck]}\n",
}


class Reached(Exception):
    """Raised when the trainer is set up and about to train its first batch."""


class Session:
    """Just enough of a TrainSession for ``fit`` to set Ultralytics' trainer up, as a run does, and stop there."""

    def __init__(self, data) -> None:
        self.data, self.total_steps, self.steps_per_epoch = data, 1, 1
        self.device, self.is_main_process, self.world_size, self.rank, self.stop_requested = torch.device("cpu"), False, 1, 0, False

    def resume_from(self):
        return None

    def start(self, start_step: int = 0) -> None:
        raise Reached

    def should_stop(self) -> bool:
        return False


def task_of(text: str, tmp_path: Path) -> YoloTask:
    result = validate_text(text, source="r.yaml")
    assert result.ok, [d.text() for d in result.diagnostics]
    ctx = TaskContext(recipe=result.recipe, registry=get_registry(), base_dir=tmp_path, output_dir=tmp_path / "run",
                      log=lambda message: None, warn=lambda message: None)
    return YoloTask(ctx)


def set_up(text: str, tmp_path: Path) -> tuple[YoloTask, object]:
    """The run's task after ``fit`` has built, loaded and frozen the trainer's model (its data built first)."""
    task = task_of(text, tmp_path / "real")
    data = task.build_data()
    with pytest.raises(Reached):
        task.fit(Session(data))
    return task, data


def trainable(model: torch.nn.Module) -> dict[str, tuple]:
    return {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}


def signature(model: torch.nn.Module) -> dict[str, tuple]:
    return {name: (tuple(p.shape), p.dtype) for name, p in model.named_parameters()}


def check_against_the_trainer(text: str, tmp_path: Path) -> YoloTask:
    run, data = set_up(text, tmp_path)
    trained = run.trainer.model
    plan = task_of(text, tmp_path / "plan")
    meta = plan.plan_model()
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert signature(meta) == signature(trained) == signature(run.build_model())
    meta, report = plan.plan_freeze(meta)
    assert trainable(meta) == trainable(trained)
    assert (report.trainable, report.total, report.frozen_stacks) == (
        run.freeze_report.trainable, run.freeze_report.total, run.freeze_report.frozen_stacks)  # summary.json's freeze
    ema = run.trainer.ema.ema
    assert plan.plan_extras(meta) == {"ema": sum(t.numel() * t.element_size() for t in [*ema.parameters(), *ema.buffers()])}
    assert plan.plan_checkpoint_units(meta) == []
    planned = plan.plan_data()
    assert (planned.train_examples, planned.eval_examples) == (data.report.train_examples, data.report.eval_examples)
    assert planned.amount == {"images": data.report.train_examples}
    boxes = data.report.details["train_boxes_per_class"]
    assert planned.balance == {name: boxes.get(name, 0) for name in run.classes}
    meta.train()
    for batch_size in (1, 2):
        loss = plan.plan_forward(meta, batch_size)
        assert loss.device.type == "meta" and loss.shape == () and loss.requires_grad
        loss.backward()
    return plan


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_plan_is_what_the_trainer_builds_and_freezes(tmp_path, variant):
    check_against_the_trainer(SMALL.format(size=64, extra=VARIANTS[variant]), tmp_path)


@pytest.mark.parametrize("head", ["{mode: replace, labels: [person, elephant, giraffe]}\nfreeze: {strategy: transfer, unfreeze_top: 2}",
                                  "{mode: keep}\nfreeze: {strategy: full}"])
def test_pretrained_weights_with_their_head_replaced_or_kept(tmp_path, coco8_copy, pretrained, head):
    """Weights under a name Ultralytics ships no YAML for: the plan reads the file's own config, as the trainer does;
    a replaced head is reshaped by the load as the trainer's is."""
    text = f"""\
model: {{modality: yolo, base: {pretrained}, image_size: 64}}
head: {head}
data: {{format: yolo, yaml: {coco8_copy}}}
training: {{epochs: 1, batch_size: 4, nominal_batch: 4}}
hardware: {{accelerator: cpu}}
"""
    plan = check_against_the_trainer(text, tmp_path)
    data = plan.plan_data()
    assert len(data.balance) == (3 if "replace" in head else 80) and data.guidance.minimum == 100
    assert not any(w.startswith("4 training images") for w in data.warnings)  # the plan says it from the guidance


def test_the_image_size_is_rounded_up_to_the_stride_as_ultralytics_does(tmp_path):
    plan = task_of(SMALL.format(size=100, extra=""), tmp_path)
    model = plan.plan_model().train()
    shapes = []
    handle = model.model[0].register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    plan.plan_forward(model, 2)
    handle.remove()
    assert shapes == [(2, 3, 128, 128)]


def test_yolo11n_at_640_from_its_weights_name_without_the_weights(tmp_path):
    """recipes/yolo-finetune.yaml names yolo11n.pt, which is not here: the plan builds from yolo11n.yaml."""
    from ftrecipe.validation import validate_file

    result = validate_file(ROOT / "recipes" / "yolo-finetune.yaml")
    assert result.ok
    ctx = TaskContext(recipe=result.recipe, registry=get_registry(), base_dir=Path(result.base_dir), output_dir=tmp_path,
                      log=lambda message: None, warn=lambda message: None)
    plan = YoloTask(ctx)
    model = plan.plan_model()
    # YOLO11n with a 3-class head whose classification branch keeps the COCO weights' width (80, not 64): Ultralytics'
    # load rebuilds it so that it transfers (2,590,425 parameters built from the YAML alone)
    assert sum(p.numel() for p in model.parameters()) == 2_605_369
    assert model.model[-1].cv3[0][-1].weight.shape == (3, 80, 1, 1)
    model, report = plan.plan_freeze(model)
    assert report.frozen_stacks == {"backbone": list(range(11))}
    model.train()
    for batch_size in (1, 2):
        assert plan.plan_forward(model, batch_size).shape == ()
    assert plan.plan_data().balance == {"person": 0, "elephant": 0, "giraffe": 2}


def test_without_the_data_the_head_follows_the_labels_or_the_yaml(tmp_path):
    text = SMALL.format(size=64, extra="").replace("data: {format: synthetic, train_size: 8, eval_size: 4, image_size: 64}",
                                                   "data: {format: yolo, yaml: missing/data.yaml}")
    plan = task_of(text, tmp_path)
    data = plan.plan_data()
    assert data.train_examples is None and "no data YAML" in data.unavailable
    assert plan.plan_model().model[-1].nc == 80  # yolo11n.yaml's own
    labelled = task_of(text.replace("head: {mode: replace}", "head: {mode: replace, labels: [cat, dog]}"), tmp_path / "labelled")
    assert labelled.plan_model().model[-1].nc == 2


def test_weights_that_are_neither_here_nor_an_ultralytics_yaml(tmp_path):
    plan = task_of(SMALL.format(size=64, extra="").replace("base: yolo11n.yaml, init: scratch", "base: my-detector.pt"), tmp_path)
    with pytest.raises(RecipeRuntimeError) as caught:
        plan.plan_model()
    assert caught.value.path == ("model", "base") and "my-detector.yaml" in caught.value.message


def test_a_plan_does_not_unpickle_local_weights_unless_told(tmp_path, monkeypatch):
    """Ultralytics' .pt files are pickles: reading their architecture runs what they carry, so a plan
    (a review) refuses to without --trust-remote-code (TaskContext.runs_checkpoint_code)."""
    import ultralytics.nn.tasks

    from ftrecipe.plugin import RemoteCodeRefused

    (tmp_path / "my-detector.pt").write_bytes(b"a pickle")
    opened: list[str] = []
    monkeypatch.setattr(ultralytics.nn.tasks, "load_checkpoint", lambda path, *a, **k: opened.append(path) or 1 / 0)
    text = SMALL.format(size=64, extra="").replace("base: yolo11n.yaml, init: scratch", "base: my-detector.pt")
    task = task_of(text, tmp_path)
    task.ctx.runs_checkpoint_code = False
    with pytest.raises(RemoteCodeRefused, match="unpickling runs whatever code the file carries"):
        task.plan_model()
    assert opened == []
    task.ctx.runs_checkpoint_code = True  # `ftrecipe run`, or plan --trust-remote-code: Ultralytics reads it
    with pytest.raises(ZeroDivisionError):
        task.plan_model()
    assert opened == [str(tmp_path / "my-detector.pt")]
