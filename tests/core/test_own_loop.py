"""The own-loop path, as a plugin whose library keeps its inner loop uses it: the example plugin's
`toy-external` modality trains with its own loop and reports through the TrainSession."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TOY, run_cli

pytestmark = pytest.mark.e2e  # training runs end to end: outside the fast tier (pytest -m 'not e2e')

EXTERNAL = TOY.read_text().replace("modality: toy-regression", "modality: toy-external")


def recipe(tmp_path: Path, text: str = EXTERNAL, name: str = "ext.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model" / "model.pt")


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, example_site) -> Path:
    """An uninterrupted own-loop run of 16 steps (8 logged, checkpoints every 4)."""
    out = tmp_path_factory.mktemp("own") / "run"
    result = run_cli("run", str(recipe(out.parent)), "--output", str(out), site=example_site)
    assert result.returncode == 0, result.stderr
    return out


def test_the_session_gives_the_loop_its_data_schedule_and_outputs(reference):
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["steps"] == 16 and summary["eval_after"]["mse"] < summary["eval_before"]["mse"]
    assert summary["freeze"]["trainable_parameters"] > 0 and summary["data"]["train_examples"] == 128
    # the "after" result's report reaches summary.json; an own loop calls evaluate itself, so ctx.evaluation stays None
    assert summary["eval_report"]["evaluations"] == [None, None]
    kinds = [r["kind"] for r in records(reference)]
    assert kinds == ["eval_before"] + ["train"] * 8 + ["eval_after"]
    assert sorted(p.name for p in (reference / "checkpoints").iterdir()) == ["step-0000012", "step-0000016"]
    state = json.loads((reference / "checkpoints" / "step-0000016" / "state.json").read_text())
    assert state["step"] == 16 and state["fingerprint"]  # written by the one atomic writer
    assert (reference / "loss_curve.png").is_file() and (reference / "model" / "model.pt").is_file()
    card = (reference / "model" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: pytorch" in card and "- toy-external" in card


def test_an_epochs_only_recipe_gets_its_step_count_from_the_data(tmp_path, example_site):
    text = EXTERNAL.replace("  max_steps: 16\n", "  epochs: 2\n")
    out = tmp_path / "run"
    result = run_cli("run", str(recipe(tmp_path, text)), "--output", str(out), "--quiet", site=example_site)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 * 128 // 8 and summary["epochs_completed"] == 2  # 16 batches of 8 an epoch
    train = [r for r in records(out) if r["kind"] == "train"]
    assert train[-1]["step"] == 32 and train[-1]["epoch"] == 2.0 and train[7]["epoch"] == 1.0


@pytest.mark.parametrize(("fault", "code"), [("int:10", 130), ("term:6", 143)])
def test_a_stopped_own_loop_checkpoints_and_resumes_exactly(tmp_path, example_site, reference, fault, code):
    path = recipe(tmp_path, EXTERNAL + "callbacks: [fault]\n")
    out = tmp_path / "run"
    first = run_cli("run", str(path), "--output", str(out), site=example_site, env={"FTRECIPE_EXAMPLE_FAULT": fault})
    step = int(fault.split(":")[1])
    assert first.returncode == code, first.stderr
    assert f"interrupted: checkpoint saved at {out / 'checkpoints' / f'step-{step:07d}'}" in first.stderr
    assert "resume with: ftrecipe run" in first.stderr and "Traceback" not in first.stderr
    assert [r["step"] for r in records(out) if r["kind"] == "train"][-1] == step
    resumed = run_cli("run", str(path), "--output", str(out), "--resume", site=example_site)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step-{step:07d}: step {step}" in resumed.stdout  # not from step 0
    assert same_weights(out, reference)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "samples_per_second"} for r in rs]  # noqa: E731
    assert strip(records(out)) == strip(records(reference))  # the resumed part logged exactly what it would have


@pytest.mark.e2e
def test_two_processes_of_an_own_loop_match_one_process(tmp_path, example_site):
    """The session carries rank and world size; the toy's loop shards the data and averages gradients,
    and the metrics are written once, by the main process."""
    args = ["--set", "training.max_steps=6", "--set", "training.log_every=1", "--set", "training.checkpoint_every=3"]
    one, two = tmp_path / "one", tmp_path / "two"
    path = recipe(tmp_path)
    assert run_cli("run", str(path), "--output", str(one), *args, site=example_site).returncode == 0
    result = run_cli("run", str(path), "--output", str(two), *args, "--set", "hardware.devices=2",
                     "--set", "training.batch_size=4", site=example_site)
    assert result.returncode == 0, result.stderr
    assert json.loads((two / "summary.json").read_text())["world_size"] == 2
    a, b = records(one), records(two)
    assert [(r["step"], r["kind"]) for r in a] == [(r["step"], r["kind"]) for r in b]  # each record once
    for ra, rb in zip(a, b):
        for key in ("loss", "mse"):
            if key in ra:
                assert abs(ra[key] - rb[key]) <= 1e-5 * max(1.0, abs(ra[key])), (ra, rb)
    wa, wb = weights(one), weights(two)
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["step-0000003", "step-0000006"]


def test_more_steps_on_resume(tmp_path, example_site, reference):
    out = tmp_path / "run"
    path = recipe(tmp_path)
    assert run_cli("run", str(path), "--output", str(out), site=example_site).returncode == 0
    longer = run_cli("run", str(path), "--output", str(out), "--resume", "--set", "training.max_steps=20", site=example_site)
    assert longer.returncode == 0, longer.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 20
    assert [r["step"] for r in records(out) if r["kind"] == "train"] == list(range(2, 21, 2))


@pytest.mark.parametrize(("launches_processes", "relaunched"), [(False, True), (True, False)])
def test_the_runner_starts_one_process_per_device_unless_the_task_starts_its_own(monkeypatch, example_registry,
                                                                                  launches_processes, relaunched):
    """Decided once the task class is known: a library that launches its own workers (Ultralytics) gets one process."""
    from ftrecipe.runner import entry
    from ftrecipe.validation import validate_text

    class Task:
        owns_loop = True

    Task.launches_processes = launches_processes
    calls = []
    monkeypatch.setattr(entry, "get_registry", lambda: example_registry)
    monkeypatch.setattr(entry, "resolve", lambda reference: Task)
    monkeypatch.setattr(entry.launch, "relaunch", lambda hardware, argv: calls.append("relaunch") or 0)
    monkeypatch.setattr(entry.Run, "execute", lambda self: calls.append("run") or 0)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    two = EXTERNAL.replace("  accelerator: cpu\n", "  accelerator: cpu\n  devices: 2\n")
    result = validate_text(two, source="ext.yaml", registry=example_registry)
    assert result.ok, [d.text() for d in result.diagnostics]
    assert entry.run_recipe(result, entry.RunOptions(argv=["run", "ext.yaml"])) == 0
    assert calls == (["relaunch"] if relaunched else ["run"])
