"""`ftrecipe plan` on the command line: its stable JSON, its verdicts and suggestions, its risks, its errors."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import pytest

from ftrecipe.cli import main
from tests.conftest import ROOT

DEMO = ROOT / "recipes" / "demo" / "llama.yaml"
SHIPPED = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "data" not in p.relative_to(ROOT / "recipes").parts)


PINNED = json.loads((ROOT / "tests" / "fixtures" / "plan-numbers.json").read_text())
"""What each shipped recipe's plan said before the plan was made faster (cache, meta adapters, one build);
an entry changes only with its recipe (the detection demo's when it sampled 32 box-head regions, not 64)."""


@pytest.fixture(scope="module")
def module_plan_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("plan-cache")


@pytest.fixture(autouse=True)
def plan_cache(module_plan_cache, monkeypatch):
    """One plan cache for the module: its plans vary budgets and batch sizes of a few recipes, nothing is patched."""
    monkeypatch.setenv("FTRECIPE_CACHE_DIR", str(module_plan_cache))
    # in this process the command is the library API, which leaves the libraries as they are: say what
    # `ftrecipe plan` says to DeepSpeed (imported by Accelerate's save_pretrained) so it prints nothing
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    return module_plan_cache


def run_cli(*args: str) -> SimpleNamespace:
    """The command in this process (planning imports torch once for the whole module)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def plan_json(path=DEMO, *sets: str) -> dict:
    args = [a for s in sets for a in ("--set", s)]
    result = run_cli("plan", str(path), *args, "--format", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_the_json_has_its_stable_keys():
    plan = plan_json()
    assert {"plugin", "defaults_used", "params", "memory", "data", "compute", "checkpoints", "warnings"} <= set(plan)
    assert {"total", "trainable"} <= set(plan["params"])
    assert {"per_device_bytes", "breakdown", "range", "budget_bytes", "verdict", "suggestions"} <= set(plan["memory"])
    memory = plan["memory"]
    assert memory["per_device_bytes"] == sum(memory["breakdown"].values()) == memory["range"]["expected"]
    assert memory["range"]["low"] <= memory["range"]["expected"] <= memory["range"]["high"]
    assert plan["plugin"]["modality"] == "causal-lm" and plan["params"]["trainable"] == plan["params"]["total"] > 0
    # each checkpoint: the fp32 weights and AdamW's two fp32 moments (and a step count per tensor), all trained
    checkpoints = plan["checkpoints"]
    assert checkpoints["kept"] == 2 and 0 < checkpoints["bytes_each"] - 12 * plan["params"]["trainable"] < 1024


def test_defaults_used_lists_what_the_file_did_not_choose():
    assert plan_json()["defaults_used"]["training.optimizer"] == "adamw"
    assert "training.optimizer" not in plan_json(DEMO, "training.optimizer=adamw")["defaults_used"]
    assert "training.batch_size" not in plan_json()["defaults_used"]  # written in the file


def test_a_budget_gives_a_verdict_and_ranked_suggestions_that_do_what_they_say():
    fits = plan_json(DEMO, "hardware.memory=80GiB")["memory"]
    assert fits["verdict"] == "fits" and fits["suggestions"] == []
    tight = plan_json(DEMO, "hardware.memory=800MiB", "training.batch_size=64")["memory"]
    assert tight["verdict"] == "does not fit"
    suggestions = tight["suggestions"]
    assert suggestions and [s["saves_bytes"] for s in suggestions] == sorted((s["saves_bytes"] for s in suggestions), reverse=True)
    assert {s["change"] for s in suggestions} >= {"gradient checkpointing", "smaller micro-batch, same effective batch"}
    for suggestion in suggestions[:2]:
        applied = plan_json(DEMO, "hardware.memory=800MiB", "training.batch_size=64", *suggestion["set"])["memory"]
        assert applied["per_device_bytes"] == suggestion["per_device_bytes"] < tight["per_device_bytes"]


def test_check_exits_1_only_when_a_recipe_does_not_fit():
    over = run_cli("plan", str(DEMO), "--set", "hardware.memory=1MiB", "--check")
    assert over.returncode == 1 and "does not fit its memory budget" in over.stderr
    assert run_cli("plan", str(DEMO), "--set", "hardware.memory=80GiB", "--check").returncode == 0


def test_a_declared_gpu_gives_the_budget_and_a_time():
    plan = plan_json(DEMO, "hardware.gpu=a100-80gb")
    assert plan["memory"]["budget_bytes"] == 80 * 1024**3
    assert plan["compute"]["hours"] > 0 and plan["compute"]["train_flops"] > 0 and plan["compute"]["steps"] > 0


def test_precision_auto_is_planned_for_the_declared_gpu():
    """The task plans with the precision a run on that GPU resolves `auto` to: fp16 where there is no bf16."""
    dog = ROOT / "recipes" / "sd-dreambooth-dog.yaml"
    t4 = plan_json(dog, "hardware.precision=auto", "hardware.gpu=t4")["memory"]
    a100 = plan_json(dog, "hardware.precision=auto", "hardware.gpu=a100-80gb")["memory"]
    assert (t4["assumptions"]["precision"], a100["assumptions"]["precision"]) == ("fp16-mixed", "bf16-mixed")
    assert t4["breakdown"]["vae"] == a100["breakdown"]["vae"] > 0  # both 16-bit
    cpu = plan_json(dog, "hardware.precision=auto", "hardware.accelerator=cpu")["memory"]
    assert cpu["assumptions"]["precision"] == "fp32" and cpu["breakdown"]["vae"] == 2 * a100["breakdown"]["vae"]


def test_risks_a_reviewer_should_see():
    tweets = ROOT / "recipes" / "bert-tweet-sentiment.yaml"
    warnings = "\n".join(plan_json(tweets, "training.learning_rate=0.5", "model.trust_remote_code=true")["warnings"])
    assert "learning_rate 0.5 is far from the usual" in warnings and "trust_remote_code" in warnings
    assert not any("learning_rate" in w for w in plan_json(tweets, "training.learning_rate=1e-3")["warnings"])
    assert not any("learning_rate" in w for w in plan_json(DEMO, "training.learning_rate=0.5")["warnings"])  # from scratch
    assert any("revision is not pinned" in w for w in plan_json(tweets)["warnings"])
    assert not any("revision" in w for w in plan_json(tweets, "model.revision=86b5e0934494bd15c9632b12f734a8a67f723594")["warnings"])
    same = "\n".join(plan_json(tweets, "data.eval=data/tweets-train.csv")["warnings"])
    assert "data.eval names the same source as data.train" in same and "also appear in training" in same
    unsplit = plan_json(tweets, "data.eval=null", "data.eval_fraction=0")
    assert unsplit["data"]["eval_examples"] == 0 and any("no evaluation examples" in w for w in unsplit["warnings"])


def test_markdown_is_a_table_for_a_pull_request():
    result = run_cli("plan", str(DEMO), "--format", "markdown")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("#### `ftrecipe plan") and "|---|---|" in lines
    assert any(line.startswith("| memory per device |") for line in lines)


def test_invalid_recipes_are_located_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEMO.read_text().replace("batch_size: 8", "batch_size: -1"))
    result = run_cli("plan", str(bad))
    assert result.returncode == 2 and f"{bad}:" in result.stderr and "training.batch_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_base_whose_config_is_nowhere_is_a_located_exit_2():
    path = ROOT / "recipes" / "bert-tweet-sentiment.yaml"
    result = run_cli("plan", str(path), "--set", "model.base=acme/no-such-model")
    assert result.returncode == 2, result.stderr
    assert "model.base" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_recipe_plans_offline(path):
    """The shipped recipes' bases are planned from configs the plugins carry: nothing is downloaded."""
    plan = plan_json(path)
    assert plan["params"]["trainable"] > 0 and plan["memory"]["per_device_bytes"] > 0
    pinned = PINNED[path.relative_to(ROOT).as_posix()]
    assert {"params.total": plan["params"]["total"], "params.trainable": plan["params"]["trainable"],
            "memory.per_device_bytes": plan["memory"]["per_device_bytes"], "memory.breakdown": plan["memory"]["breakdown"],
            "memory.host_bytes": plan["memory"]["host_bytes"], "compute.flops_per_example": plan["compute"]["flops_per_example"],
            "data.train_examples": plan["data"]["train_examples"]} == pinned
    # Ultralytics trains YOLO in its own loop and writes its own checkpoints; the common loop's are sized
    assert (plan["checkpoints"] == {}) is (plan["plugin"]["modality"] == "yolo")
    if "memory:" in path.read_text() or "gpu:" in path.read_text():
        assert plan["memory"]["verdict"] in ("fits", "tight")


def test_the_readme_shows_what_the_plan_prints(monkeypatch):
    monkeypatch.chdir(ROOT)
    readme = (ROOT / "README.md").read_text()
    command = "$ ftrecipe plan recipes/llama2-7b-sql-qlora.yaml"
    shown = readme.split(command, 1)[1].split("```", 1)[0].strip("\n").splitlines()
    printed = run_cli("plan", "recipes/llama2-7b-sql-qlora.yaml").stdout.splitlines()
    assert shown and all(line in printed for line in shown), [line for line in shown if line not in printed]


def test_a_modality_without_plan_hooks_is_said_plainly(example_site):
    """A third-party modality that does not describe its model cannot be planned: exit 1, one line, no traceback."""
    from tests.conftest import run_cli as run_in_a_process

    result = run_in_a_process("plan", str(ROOT / "tests" / "fixtures" / "toy.yaml"), site=example_site)
    assert result.returncode == 1, result.stderr
    assert "does not describe its model for ftrecipe plan" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.e2e
def test_planning_every_shipped_recipe_opens_no_socket(tmp_path):
    """The plan downloads nothing by itself: with every connect and DNS lookup refused and no offline variable
    set by the user, every shipped recipe is planned (one process, all recipes)."""
    from tests.conftest import run_without_network

    result, attempts = run_without_network(tmp_path, "plan", *map(str, SHIPPED), "--format", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert attempts == ""
    assert len(json.loads(result.stdout)) == len(SHIPPED)
    assert result.stderr == ""  # no library's notices either (hub look-ups, trust checks, deprecations)
