"""The common runner end to end on the example plugin's toy modality (fast: a tiny MLP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ftrecipe.testing import foreign_lines
from tests.conftest import OFFLINE, TOY, run_cli, run_without_network
from tests.core.trackers import TRACKING, check_resumed_toy_run

pytestmark = pytest.mark.e2e  # training runs end to end: outside the fast tier (pytest -m 'not e2e')



def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model" / "model.pt")


def train_records(run: Path) -> list[tuple]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["kind"], r.get("loss"), r.get("lr"), r.get("mse")) for r in lines]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, example_site) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    result = run_cli("run", str(TOY), "--output", str(out), site=example_site)
    assert result.returncode == 0, result.stderr
    return out


def test_outputs_of_a_run(reference_run, example_site):
    for name in ("recipe.resolved.yaml", "run.json", "metrics.jsonl", "summary.json", "loss_curve.png", "model/README.md"):
        assert (reference_run / name).is_file(), name
    summary = json.loads((reference_run / "summary.json").read_text())
    assert summary["steps"] == 16 and summary["world_size"] == 1
    assert summary["eval_after"]["mse"] < summary["eval_before"]["mse"]
    assert summary["eval_report"]["evaluations"] == ["before", "after"] and summary["eval_report"]["worst_error"] > 0
    run = json.loads((reference_run / "run.json").read_text())
    assert run["seed"] == 42 and run["versions"]["torch"] and run["hardware"]["world_size"] == 1
    assert "ftrecipe-example" in run["versions"]
    records = [json.loads(x) for x in (reference_run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(2, 17, 2))
    assert all({"epoch", "loss", "lr", "samples_per_second"} <= set(r) for r in train)
    resolved = (reference_run / "recipe.resolved.yaml").read_text()
    assert "trust_remote_code: false" in resolved and "keep_checkpoints: 2" in resolved
    assert "\nhead:" not in resolved and "quantization" not in resolved  # what the toy does not read is left out
    assert run_cli("validate", str(reference_run / "recipe.resolved.yaml"), site=example_site).returncode == 0
    checkpoints = sorted(p.name for p in (reference_run / "checkpoints").iterdir())
    assert checkpoints == ["step-0000012", "step-0000016"]  # keep the last 2, no temporaries
    assert "| mse |" in (reference_run / "model" / "README.md").read_text()


LONG = ("--set", "training.max_steps=40")  # two and a half epochs of 16 steps


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory, example_site) -> Path:
    out = tmp_path_factory.mktemp("long") / "run"
    result = run_cli("run", str(TOY), "--output", str(out), *LONG, site=example_site)
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize(
    ("fault", "code", "resumes_at"),
    [
        ("kill:22", (137, -9), 20),  # killed like `kill -9`: the last periodic checkpoint, mid epoch 2
        ("int:10", (130,), 10),  # Ctrl-C: a checkpoint at the stop; the resumed part crosses two epoch ends
        ("term:30", (143,), 30),  # SIGTERM (a scheduler's pre-emption)
    ],
)
def test_interrupted_and_resumed_run_is_exact(tmp_path, example_site, long_reference, fault, code, resumes_at):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "callbacks: [fault]\n")
    out = tmp_path / "run"
    first = run_cli("run", str(recipe), "--output", str(out), *LONG, site=example_site, env={"FTRECIPE_EXAMPLE_FAULT": fault})
    assert first.returncode in code, first.stderr
    if not fault.startswith("kill"):
        assert f"checkpoint saved at {out / 'checkpoints' / f'step-{resumes_at:07d}'}" in first.stderr
        assert "resume with: ftrecipe run" in first.stderr and "--resume" in first.stderr and "Traceback" not in first.stderr
    if fault.startswith("kill"):  # an existing run is never overwritten: it continues only when asked
        refused = run_cli("run", str(recipe), "--output", str(out), *LONG, site=example_site)
        assert refused.returncode == 1 and "pass --resume" in refused.stderr
    resumed = run_cli("run", str(recipe), "--output", str(out), *LONG, "--resume", site=example_site)
    assert resumed.returncode == 0, resumed.stderr
    epoch = resumes_at // 16 + 1
    assert f"resuming from step-{resumes_at:07d}: step {resumes_at}, epoch {epoch}" in resumed.stdout  # not from 0
    expected, got = weights(long_reference), weights(out)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert train_records(out) == train_records(long_reference)  # the resumed part logged what it would have
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["epochs_completed"] == 2 and summary["samples"] == 40 * 8


def test_resume_is_exact_across_a_change_of_loader_workers_and_continues_the_tracker_runs(
        tmp_path, monkeypatch, example_site, reference_run):
    """Augmentation is keyed by (seed, epoch, index), not by worker or call order. The same two runs carry
    all three experiment trackers: offline by default (every connect is refused and written down), the
    resumed run reopens the killed run's tracker runs and logs no step twice (tests/core/trackers.py)."""
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "callbacks: [fault]\n" + TRACKING)
    out = tmp_path / "run"
    workers = ("--set", "hardware.dataloader_workers=2")
    monkeypatch.setenv("PYTHONPATH", str(example_site))
    monkeypatch.setenv("FTRECIPE_EXAMPLE_FAULT", "kill:6")  # killed after step 6 was logged; resumes from step 4
    first, attempts = run_without_network(tmp_path, "run", str(recipe), "--output", str(out), "--quiet", *workers)
    assert first.returncode in (137, -9), first.stderr
    started = json.loads((out / "tracking.json").read_text())
    assert started["logged"]["train"] == 6
    monkeypatch.delenv("FTRECIPE_EXAMPLE_FAULT")
    resumed, more = run_without_network(tmp_path, "run", str(recipe), "--output", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step-0000004: step 4" in resumed.stdout
    expected, got = weights(reference_run), weights(out)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert train_records(out) == train_records(reference_run)
    assert not attempts + more, "nothing may reach the network unless the recipe asks"
    assert not foreign_lines(first.stderr + resumed.stderr), "a tracking library wrote to ftrecipe's console"
    check_resumed_toy_run(out, started, tmp_path)


def test_resume_with_more_epochs_continues_where_it_stopped(tmp_path, example_site):
    text = TOY.read_text().replace("  max_steps: 16\n", "  epochs: 1\n")
    recipe = tmp_path / "epochs.yaml"
    recipe.write_text(text)
    out = tmp_path / "run"
    assert run_cli("run", str(recipe), "--output", str(out), "--quiet", site=example_site).returncode == 0
    first = [r for r in train_records(out) if r[1] == "train"]
    more = run_cli("run", str(recipe), "--output", str(out), "--resume", "--set", "training.epochs=2", site=example_site)
    assert more.returncode == 0, more.stderr
    assert "resuming from step-0000016: step 16, epoch 2" in more.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 32 and summary["epochs_completed"] == 2
    records = [r for r in train_records(out) if r[1] == "train"]
    assert records[: len(first)] == first and [r[0] for r in records] == list(range(2, 33, 2))


@pytest.mark.parametrize(
    ("configured", "device", "devices", "cpus", "expected"),
    [
        (3, "cpu", 1, 2, 3),  # the recipe's count wins
        (None, "cpu", 1, 2, 0),  # a small CPU: a worker would take cores from the compute threads
        (None, "cpu", 2, 4, 0),  # two processes on four cores: two each
        (None, "cpu", 1, 8, 1),
        (None, "cuda", 1, 16, 8),
        (None, "cuda", 4, 16, 3),  # a core per process stays with the training process
    ],
)
def test_loader_workers_policy(monkeypatch, configured, device, devices, cpus, expected):
    from ftrecipe.runner import loop

    monkeypatch.setattr(loop.os, "cpu_count", lambda: cpus)
    assert loop.loader_workers(configured, device, devices) == expected


def test_resume_refuses_an_incompatible_recipe_and_allows_more_steps(tmp_path, example_site, reference_run):
    out = tmp_path / "run"
    assert run_cli("run", str(TOY), "--output", str(out), "--set", "training.max_steps=8", site=example_site).returncode == 0
    changed = run_cli(
        "run", str(TOY), "--output", str(out), "--resume", "--set", "training.learning_rate=0.5", "--set", "model.width=8",
        site=example_site,
    )
    assert changed.returncode == 1
    assert "model.width" in changed.stderr and "training.learning_rate" in changed.stderr
    longer = run_cli("run", str(TOY), "--output", str(out), "--resume", "--set", "training.max_steps=12", site=example_site)
    assert longer.returncode == 0, longer.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 12


def test_output_directory_with_other_files_is_never_overwritten(tmp_path, example_site):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli("run", str(TOY), "--output", str(out), site=example_site)
    assert result.returncode == 1 and "not empty" in result.stderr
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_runtime_mistake_points_at_the_recipe_line(tmp_path, example_site):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "freeze:\n  strategy: partial\n  freeze: ['nothing.*']\n")
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), site=example_site)
    assert result.returncode == 2
    line = next(i for i, text in enumerate(recipe.read_text().splitlines(), 1) if "nothing.*" in text)
    assert f"{recipe}:{line}:12: freeze.freeze[0]: 'nothing.*' matches no parameter" in result.stderr
    assert "Traceback" not in result.stderr


def test_smoke_and_quiet(tmp_path, example_site):
    result = run_cli("run", str(TOY), "--smoke", "--quiet", "--output", str(tmp_path / "s"), site=example_site)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["smoke"] is True
    assert result.stdout.startswith("done: 2 steps")


@pytest.mark.e2e
def test_ctrl_c_stops_two_processes_at_a_checkpoint_that_resumes_exactly(tmp_path, example_site):
    """A terminal's Ctrl-C reaches the launcher and both workers; they agree on a step, checkpoint (FSDP:
    each its shards) and exit 130 without the launcher's traceback, and the resumed run ends where an
    uninterrupted one does. (The stop is the same for DDP; tests/core/test_sharded_runs.py has more.)"""
    args = ["--set", "hardware.devices=2", "--set", "hardware.strategy=fsdp", "--set", "training.batch_size=4",
            "--set", "training.max_steps=300",
            "--set", "training.log_every=1", "--set", "training.checkpoint_every=100000", "--quiet"]
    reference, out = tmp_path / "reference", tmp_path / "run"
    assert run_cli("run", str(TOY), "--output", str(reference), *args, site=example_site).returncode == 0
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(example_site)}
    command = [sys.executable, "-m", "ftrecipe", "run", str(TOY), "--output", str(out), *args]
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "metrics.jsonl").is_file() and len((out / "metrics.jsonl").read_text().splitlines()) >= 20:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 130, stderr
    assert "resume with: ftrecipe run" in stderr and "Traceback" not in stderr and "SignalException" not in stderr
    assert all((checkpoint / "sharded" / ".metadata").is_file() for checkpoint in (out / "checkpoints").iterdir())
    resumed = run_cli("run", str(TOY), "--output", str(out), *args, "--resume", site=example_site)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = weights(reference), weights(out)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


@pytest.mark.e2e
def test_a_mistake_found_by_two_processes_is_reported_once(tmp_path, example_site):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "freeze:\n  strategy: partial\n  freeze: ['nothing.*']\n")
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--set", "hardware.devices=2", site=example_site)
    assert result.returncode == 2
    assert result.stderr.count("'nothing.*' matches no parameter") == 1
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr


def test_out_of_memory_is_explained(tmp_path, example_site):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "callbacks: [fault]\n")
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), site=example_site, env={"FTRECIPE_EXAMPLE_FAULT": "oom:4"})
    assert result.returncode == 1
    assert "ran out of memory" in result.stderr and "gradient_checkpointing" in result.stderr
    assert "Traceback" not in result.stderr


def test_gradient_accumulation_matches_the_larger_batch(tmp_path, example_site):
    """4 examples x 2 accumulated micro-batches = one batch of 8: same weights, within float tolerance."""
    args = ["--set", "training.max_steps=6", "--set", "training.checkpoint_every=100", "--set", "data.augment=[]"]
    one = run_cli("run", str(TOY), "--output", str(tmp_path / "a"), *args, site=example_site)
    two = run_cli("run", str(TOY), "--output", str(tmp_path / "b"), *args, "--set", "training.batch_size=4",
                  "--set", "training.gradient_accumulation=2", site=example_site)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "callback-events.jsonl").read_text().splitlines()]


def test_periodic_evaluation_and_every_callback_event(tmp_path, example_site):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "callbacks: [record]\n")
    out = tmp_path / "run"
    result = run_cli("run", str(recipe), "--output", str(out), "--quiet", "--set", "training.eval_every=5", site=example_site)
    assert result.returncode == 0, result.stderr
    seen = events(out)
    assert [e["step"] for e in seen if e["event"] == "log"] == list(range(2, 17, 2))
    evaluations = [e for e in seen if e["event"] == "evaluate"]
    assert [e["step"] for e in evaluations] == [5, 10, 15] and all("mse" in e["metrics"] for e in evaluations)
    periodic = [r for r in (json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "eval"]
    assert [r["step"] for r in periodic] == [5, 10, 15] and [r["mse"] for r in periodic] == [e["metrics"]["mse"] for e in evaluations]
    checkpoints = [e for e in seen if e["event"] == "checkpoint"]
    assert [e["step"] for e in checkpoints] == [4, 8, 12, 16] and all(e["complete"] for e in checkpoints)
    end = seen[-1]
    summary = json.loads((out / "summary.json").read_text())
    assert end == {"event": "end", "steps": 16, "eval_after": summary["eval_after"]}
    # the task was told which evaluation ran (ctx.evaluation), and the final one's report is in summary.json
    assert summary["eval_report"]["evaluations"] == ["before", "periodic", "periodic", "periodic", "after"]


def test_max_steps_on_the_command_line_wins(tmp_path, example_site):
    out = tmp_path / "run"
    result = run_cli("run", str(TOY), "--output", str(out), "--quiet", "--max-steps", "6", site=example_site)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 6
    assert [r[0] for r in train_records(out) if r[1] == "train"] == [2, 4, 6]
    bad = run_cli("run", str(TOY), "--output", str(tmp_path / "bad"), "--max-steps", "0", site=example_site)
    assert bad.returncode == 1 and "--max-steps must be at least 1" in bad.stderr


def test_a_callback_that_raises_stops_the_run_with_its_message_and_debug_shows_where(tmp_path, example_site):
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "callbacks: [fault]\n")
    env = {"FTRECIPE_EXAMPLE_FAULT": "raise:4"}
    plain = run_cli("run", str(recipe), "--output", str(tmp_path / "a"), site=example_site, env=env)
    assert plain.returncode == 1
    assert "ftrecipe run: ValueError: the tracker lost its connection" in plain.stderr
    assert "--debug" in plain.stderr and "Traceback" not in plain.stderr
    debug = run_cli("run", str(recipe), "--output", str(tmp_path / "b"), "--debug", site=example_site, env=env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "in on_log" in debug.stderr


def test_several_nodes_are_started_by_the_user_with_torchrun(tmp_path, example_site):
    result = run_cli("run", str(TOY), "--output", str(tmp_path / "run"), "--set", "hardware.nodes=2",
                     "--set", "hardware.devices=4", site=example_site)
    assert result.returncode == 2 and not (tmp_path / "run").exists()
    assert "torchrun --nnodes 2 --nproc_per_node 4 --node_rank <0..1>" in result.stderr
    assert f"-m ftrecipe run {TOY}" in result.stderr


def test_an_evaluations_images_are_kept_one_file_per_step(tmp_path):
    """Image generators return sample grids: every evaluation (before, periodic, after) leaves samples/step-N.png."""
    from PIL import Image

    from ftrecipe.runner.outputs import save_samples
    from ftrecipe.task import EvalResult

    red, blue = Image.new("RGB", (4, 4), "red"), Image.new("RGB", (4, 4), "blue")
    save_samples(tmp_path, "eval_before", 0, EvalResult({"loss": 1.0}, [{"prediction": "a"}], {"grid": red}))
    save_samples(tmp_path, "eval", 5, EvalResult({"loss": 0.5}, [{"prediction": "b"}], {"grid": blue}))
    save_samples(tmp_path, "eval_after", 9, EvalResult({"loss": 0.2}, [], {"grid": red, "other": blue}))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-0.png", "step-5.png", "step-9-grid.png", "step-9-other.png"]
    assert Image.open(tmp_path / "samples" / "step-5.png").getpixel((0, 0)) == (0, 0, 255)
    assert (tmp_path / "eval_before_samples.jsonl").is_file() and not (tmp_path / "eval_samples.jsonl").exists()
