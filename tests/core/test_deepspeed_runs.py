"""DeepSpeed ZeRO over two CPU processes (``DS_ACCELERATOR=cpu``, gloo), through Accelerate: the model
is saved whole and equals one process's, the checkpoints hold every process's partitions, and a run
stopped by kill -9 or Ctrl-C resumes to the same weights. On the example plugin's toy MLP. DeepSpeed's
CPU shared-memory kernel (a C++ compile) is not built: ZeRO training never calls it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import TOY, run_cli
from tests.core.test_sharded_runs import STEPS, close, recipe_with_fault, weights

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                                  reason="DeepSpeed is not installed (pip install 'ftrecipe[deepspeed]')")]


def zero(stage: int) -> tuple[str, ...]:
    """Two processes x 4 examples: the global batch of one process with the toy's 8."""
    return ("--set", "hardware.devices=2", "--set", "hardware.strategy=deepspeed", "--set", f"hardware.zero_stage={stage}",
            "--set", "training.batch_size=4")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, example_site) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    result = run_cli("run", str(TOY), "--output", str(out), *STEPS, "--quiet", site=example_site)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def zero3_run(tmp_path_factory, example_site) -> Path:
    out = tmp_path_factory.mktemp("zero3") / "run"
    extensions = tmp_path_factory.mktemp("torch-extensions")
    result = run_cli("run", str(TOY), "--output", str(out), *STEPS, *zero(3), "--quiet", site=example_site,
                     env={"TORCH_EXTENSIONS_DIR": str(extensions)})
    assert result.returncode == 0, result.stderr
    assert not list(extensions.rglob("*.so")), "DeepSpeed compiled a kernel (its shared-memory one is never called in training)"
    return out


def test_zero3_saves_the_model_whole_and_matches_one_process(zero3_run, one_process):
    """ZeRO-3 partitions the weights over both processes: the saved model is gathered from both and equals
    one process's on the same data, seed and global batch (within float tolerance: the reduction order
    differs); each checkpoint holds both processes' partitions."""
    summary = json.loads((zero3_run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 12
    assert close(weights(zero3_run), weights(one_process), atol=1e-5)
    checkpoint = zero3_run / "checkpoints" / "step-0000012" / "pytorch_model"
    assert {p.name for p in checkpoint.glob("zero_pp_rank_*_model_states.pt")} == {
        "zero_pp_rank_0_mp_rank_00_model_states.pt", "zero_pp_rank_1_mp_rank_00_model_states.pt"}
    states = torch.load(checkpoint / "zero_pp_rank_0_mp_rank_00_model_states.pt", weights_only=False)
    assert set(states["module"]) == {"2.weight", "2.bias"}, list(states["module"])  # the frozen layer left out


def test_zero2_matches_one_process(tmp_path, example_site, one_process):
    """ZeRO-2 partitions the gradients and optimizer states; every process holds the weights."""
    out = tmp_path / "run"
    result = run_cli("run", str(TOY), "--output", str(out), *STEPS, *zero(2), "--quiet", site=example_site)
    assert result.returncode == 0, result.stderr
    assert close(weights(out), weights(one_process), atol=1e-5)


@pytest.mark.parametrize(("fault", "code"), [("kill:6", 137), ("int:6", 130)])
def test_zero3_resumes_exactly_after_kill_9_and_ctrl_c(tmp_path, example_site, zero3_run, fault, code):
    """kill -9 of a process ends the job at its last complete checkpoint (step 4); Ctrl-C makes both
    processes checkpoint the step they agree on and exit 130. Either way --resume ends with the weights of
    the uninterrupted run."""
    recipe, out = recipe_with_fault(tmp_path), tmp_path / "run"
    first = run_cli("run", str(recipe), "--output", str(out), *STEPS, *zero(3), site=example_site,
                    env={"FTRECIPE_EXAMPLE_FAULT": fault})
    assert first.returncode == code, first.stderr
    assert "Traceback" not in first.stderr
    resumed = run_cli("run", str(recipe), "--output", str(out), *STEPS, *zero(3), "--resume", site=example_site)
    assert resumed.returncode == 0, resumed.stderr
    # kill -9: the last checkpoint; Ctrl-C at step 6: the step after, which both processes agree on
    assert ("resuming from step-0000004: step 4" if code == 137 else "resuming from step-0000007: step 7") in resumed.stdout
    expected, got = weights(zero3_run), weights(out)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
