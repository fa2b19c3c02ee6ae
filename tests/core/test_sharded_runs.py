"""Several processes on the CPU (gloo): FSDP trains, checkpoints, resumes and saves whole; the recipe's
strategy and size hold however the processes were started (ftrecipe's own launch, torchrun by hand,
two torchrun agents as two nodes on one machine). On the example plugin's toy MLP, so each run takes
seconds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import OFFLINE, TOY, run_cli

pytestmark = pytest.mark.e2e

STEPS = ("--set", "training.max_steps=12", "--set", "training.checkpoint_every=4", "--set", "training.log_every=1",
         "--set", "data.augment=[]", "--set", "freeze.strategy=partial", "--set", "freeze.freeze=['0.*']")
"""A first layer frozen, as a LoRA base is: checkpoints leave it out and resumes rebuild it (frozen.py)."""
TWO_FSDP = ("--set", "hardware.devices=2", "--set", "hardware.strategy=fsdp", "--set", "training.batch_size=4")
"""Two processes x 4 examples: the global batch of one process with the toy's 8."""


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model" / "model.pt")


def close(a: dict, b: dict, atol: float) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def recipe_with_fault(tmp_path: Path) -> Path:
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(TOY.read_text() + "callbacks: [fault]\n")
    return recipe


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory, example_site) -> Path:
    out = tmp_path_factory.mktemp("fsdp") / "run"
    tracked = ("--set", "tracking.backends=[tensorboard]")  # two processes, one tracker run (below)
    result = run_cli("run", str(TOY), "--output", str(out), *STEPS, *TWO_FSDP, *tracked, site=example_site)
    assert result.returncode == 0, result.stderr
    return out


def losses(run: Path) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]


def test_fsdp_over_two_processes_saves_the_model_whole_and_matches_one_process(tmp_path, example_site, fsdp_run):
    """Every weight is in the saved model (gathered from both shards), equal to a one-process run on
    the same data, seed and global batch within float tolerance (the reduction order differs), and the
    logged loss is the mean over both processes at every step."""
    one = tmp_path / "one"
    assert run_cli("run", str(TOY), "--output", str(one), *STEPS, "--quiet", site=example_site).returncode == 0
    summary = json.loads((fsdp_run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 12
    assert close(weights(fsdp_run), weights(one), atol=1e-5)
    pairs = list(zip(losses(fsdp_run), losses(one), strict=True))
    assert all(a[0] == b[0] and abs(a[1] - b[1]) <= 1e-5 * max(1.0, abs(b[1])) for a, b in pairs)
    shards = fsdp_run / "checkpoints" / "step-0000012" / "sharded"
    assert (shards / ".metadata").is_file() and len(list(shards.glob("*.distcp"))) == 2  # one file per process
    assert weights_in_shards(shards) == {"model.2.weight", "model.2.bias"}  # the frozen layer left out


def weights_in_shards(shards: Path) -> set[str]:
    from torch.distributed.checkpoint import FileSystemReader

    return {key for key in FileSystemReader(str(shards)).read_metadata().state_dict_metadata if key.startswith("model.")}


def test_only_the_main_process_logs_to_the_trackers(fsdp_run):
    """Two processes, one tracker run: each step once, with the loss averaged over both processes."""
    from tests.core.trackers import tensorboard_scalars

    runs = json.loads((fsdp_run / "tracking.json").read_text())["runs"]
    assert list(runs) == ["tensorboard"]
    assert len(list((fsdp_run / "tensorboard").iterdir())) == 1
    scalars, _ = tensorboard_scalars(fsdp_run / runs["tensorboard"]["log_dir"])
    assert [(step, pytest.approx(loss)) for step, loss in losses(fsdp_run)] == scalars["train/loss"]


def test_fsdp_resumes_exactly_after_kill_9(tmp_path, example_site, fsdp_run):
    """kill -9 of a process ends the job; the last complete sharded checkpoint (step 4) resumes and the
    run ends with the weights of the uninterrupted one. (Ctrl-C under FSDP: test_runner.py.)"""
    recipe, out = recipe_with_fault(tmp_path), tmp_path / "run"
    first = run_cli("run", str(recipe), "--output", str(out), *STEPS, *TWO_FSDP, site=example_site,
                    env={"FTRECIPE_EXAMPLE_FAULT": "kill:6"})
    assert first.returncode == 137, first.stderr
    resumed = run_cli("run", str(recipe), "--output", str(out), *STEPS, *TWO_FSDP, "--resume", site=example_site)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step-0000004: step 4" in resumed.stdout
    expected, got = weights(fsdp_run), weights(out)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_resuming_at_another_world_size_is_refused_naming_both(tmp_path, example_site, fsdp_run):
    out = tmp_path / "run"
    subprocess.run(["cp", "-r", str(fsdp_run), str(out)], check=True)
    result = run_cli("run", str(TOY), "--output", str(out), *STEPS, "--set", "training.max_steps=14", "--resume",
                     site=example_site)
    assert result.returncode == 1
    assert "written by 2 process(es) and this run has 1" in result.stderr and "Traceback" not in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *arguments, "-m", "ftrecipe"]


def test_a_hand_started_torchrun_must_match_the_recipes_devices(tmp_path, example_site):
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(example_site), "OMP_NUM_THREADS": "1"}
    command = [*torchrun("--standalone", "--nproc_per_node", "2"), "run", str(TOY),
               "--output", str(tmp_path / "run")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and not (tmp_path / "run").exists()
    assert "hardware.devices: the launcher started 2 process(es) but the recipe asks for 1" in result.stderr


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_nodes_on_one_machine_run_the_readmes_multinode_command(tmp_path, example_site, fsdp_run, strategy):
    """Two torchrun agents, one process each, meet through a c10d rendezvous on localhost: the README's
    multi-node command. The recipe's strategy holds (FSDP writes sharded checkpoints) and the model is
    the one two local processes train."""
    out = tmp_path / "run"
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(example_site), "OMP_NUM_THREADS": "1"}
    endpoint = f"127.0.0.1:{free_port()}"
    args = ["run", str(TOY), "--output", str(out), *STEPS, "--quiet", "--set", "hardware.nodes=2",
            "--set", f"hardware.strategy={strategy}", "--set", "training.batch_size=4"]
    agents = [
        subprocess.Popen([*torchrun("--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank),
                                    "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", "two-nodes"),
                         *args],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in (0, 1)
    ]
    results = [agent.communicate(timeout=300) for agent in agents]
    assert [agent.returncode for agent in agents] == [0, 0], results[0][1][-3000:] + results[1][1][-3000:]
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
    sharded = (out / "checkpoints" / "step-0000012" / "sharded").is_dir()
    assert sharded == (strategy == "fsdp")
    assert close(weights(out), weights(fsdp_run), atol=1e-6)


def test_accelerate_launch_runs_the_recipes_strategy_not_its_own(tmp_path, example_site):
    """`accelerate launch --use_fsdp` of a recipe that says ddp trains DDP (Accelerate's own checkpoint
    of the whole model, no shards): the recipe decides, however the processes were started."""
    out = tmp_path / "run"
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(example_site), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--use_fsdp", "--num_processes", "2",
               "--num_machines", "1", "-m", "ftrecipe", "run", str(TOY), "--output", str(out), *STEPS, "--quiet",
               "--set", "hardware.devices=2", "--set", "training.batch_size=4"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = out / "checkpoints" / "step-0000012"
    assert (checkpoint / "model.safetensors").is_file() and not (checkpoint / "sharded").exists()
    from safetensors.torch import load_file

    # the frozen layer left out. Accelerate wraps the model in DistributedDataParallel here (over gloo) as it
    # does on GPUs, and saves the model it was given, unwrapped: the names the hooks compare, no `module.`
    assert set(load_file(checkpoint / "model.safetensors")) == {"2.weight", "2.bias"}
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2
