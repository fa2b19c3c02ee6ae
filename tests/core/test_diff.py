"""`ftrecipe diff OLD NEW`: the keys that changed once defaults are filled, and what the change does to
parameters, memory, data and compute (planned by an injected fake here; by the real plan end to end)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftrecipe.errors import RecipeRuntimeError
from ftrecipe.plan.diff import KeyChange, flatten, key_changes, run_diff
from tests.conftest import ROOT, run_cli

LLAMA = (ROOT / "recipes" / "demo" / "llama.yaml").read_text()
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def lora(text: str) -> str:
    """The demo recipe with LoRA and twice the batch size."""
    return text.replace("strategy: full", "strategy: lora").replace("batch_size: 8", "batch_size: 16")


class FakePlan:
    """Plan.as_dict()'s contract, its numbers following the recipe (LoRA trains less, a bigger batch needs more memory)."""

    def __init__(self, result) -> None:
        self.recipe = result.recipe
        self.result = result

    def as_dict(self) -> dict:
        lora_ = self.recipe.freeze.strategy == "lora"
        batch = self.recipe.training.batch_size
        warnings = ["fewer than 1K examples"] + (["LoRA rank 16 on a tiny model"] if lora_ else [])
        return {
            "recipe": self.result.source, "plugin": {"modality": "causal-lm", "plugin": "ftrecipe-text"},
            "defaults_used": {},
            "params": {"total": 1_200_000, "trainable": 40_000 if lora_ else 1_200_000, "strategy": self.recipe.freeze.strategy, "by_module": {}},
            "memory": {"per_device_bytes": batch * 2**30, "breakdown": {}, "range": {}, "budget_bytes": 12 * 2**30,
                       "verdict": "fits" if batch * 2**30 <= 12 * 2**30 else "does not fit", "suggestions": [], "host_bytes": 0},
            "data": {"train_examples": 1952, "eval_examples": 48, "amount": {}, "unavailable": None},
            "compute": {"train_flops": 3.0e15 / batch * 8, "steps": 1952 * 4 // batch, "hours": None, "gpu": None, "utilisation": 0.4},
            "checkpoints": {"bytes_each": (40_000 if lora_ else 1_200_000) * 12, "kept": 2},
            "warnings": warnings,
        }


def diff(old: str, new: str, fmt: str = "text", planner=FakePlan) -> int:
    return run_diff(argparse.Namespace(old=old, new=new, format=fmt), planner=planner)


def write(folder: Path, name: str, text: str) -> str:
    (folder / name).write_text(text)
    return str(folder / name)


# ---------------------------------------------------------------- bad input: located, exit 2


@pytest.mark.parametrize("side", ["old", "new"])
def test_an_invalid_recipe_on_either_side_is_located_and_exits_2(tmp_path, capsys, side):
    good = write(tmp_path, "good.yaml", LLAMA)
    bad = write(tmp_path, "bad.yaml", LLAMA.replace("batch_size: 8", "batch_sise: 8"))
    line = LLAMA.splitlines().index("  batch_size: 8") + 1
    assert diff(*((bad, good) if side == "old" else (good, bad))) == 2
    err = capsys.readouterr().err
    assert f"{bad}:{line}:3: training.batch_sise: unknown key 'batch_sise' (did you mean 'batch_size'?)" in err


def test_a_missing_file_and_a_bad_git_ref_exit_2_with_one_line(tmp_path):
    repo = git_repo(tmp_path)
    for old, reason in (("missing.yaml", "missing.yaml: no such file"),
                        ("git:no-such-rev:recipe.yaml", "git:no-such-rev:recipe.yaml: invalid object name 'no-such-rev'"),
                        ("git:HEAD:nope.yaml", "git:HEAD:nope.yaml: path 'nope.yaml' does not exist in 'HEAD'"),
                        ("git:HEAD", "git:HEAD: expected git:REV:path")):
        out = run_cli("diff", old, "recipe.yaml", cwd=repo)
        assert out.returncode == 2, out.stderr
        assert reason in out.stderr and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_git_outside_a_repository_exits_2(tmp_path):
    write(tmp_path, "recipe.yaml", LLAMA)
    out = run_cli("diff", "git:HEAD:recipe.yaml", "recipe.yaml", cwd=tmp_path, env={"GIT_CEILING_DIRECTORIES": str(tmp_path.parent)})
    assert out.returncode == 2 and "not a git repository" in out.stderr and "Traceback" not in out.stderr


def test_a_mistake_the_planner_finds_is_located_in_its_side(tmp_path, capsys):
    old, new = write(tmp_path, "old.yaml", LLAMA), write(tmp_path, "new.yaml", lora(LLAMA))

    def planner(result):
        if result.source == new:
            raise RecipeRuntimeError(("data", "train_size"), "more than the generator can make")
        return FakePlan(result)

    assert diff(old, new, planner=planner) == 2
    line = LLAMA.splitlines().index("  train_size: 2000") + 1
    assert f"{new}:{line}:15: data.train_size: more than the generator can make" in capsys.readouterr().err


# ---------------------------------------------------------------- git:REV:path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}).stdout


def git_repo(tmp_path: Path, text: str = LLAMA) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    write(repo, "recipe.yaml", text)
    git(repo, "add", "recipe.yaml")
    git(repo, "commit", "-q", "-m", "recipe")
    return repo


def test_git_rev_path_against_the_working_tree(tmp_path, capsys, monkeypatch):
    """No name in the recipe: both sides default it from the file name, so only the edit shows, and the
    committed side's data paths resolve in the working tree."""
    repo = git_repo(tmp_path, LLAMA.replace("name: llama-demo\n", ""))
    (repo / "recipe.yaml").write_text(lora(LLAMA.replace("name: llama-demo\n", "")))
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")  # git paths are relative to the repository's root
    seen = {}

    def planner(result):
        seen[result.source] = result.base_dir
        return FakePlan(result)

    assert diff("git:HEAD:recipe.yaml", "../recipe.yaml", planner=planner) == 0
    out = capsys.readouterr().out
    assert "~ freeze.strategy: full -> lora" in out and "~ training.batch_size: 8 -> 16" in out
    assert "name" not in out.split("what it does")[0].replace("git:HEAD:recipe.yaml", "")
    assert seen == {"git:HEAD:recipe.yaml": repo.resolve(), "../recipe.yaml": repo.resolve()}


def test_an_invalid_committed_recipe_is_located_with_its_git_label(tmp_path):
    repo = git_repo(tmp_path, LLAMA.replace("strategy: full", "strategy: fulll"))
    write(repo, "recipe.yaml", LLAMA)
    out = run_cli("diff", "git:HEAD:recipe.yaml", "recipe.yaml", cwd=repo)
    line = LLAMA.splitlines().index("  strategy: full") + 1
    assert out.returncode == 2
    assert f"git:HEAD:recipe.yaml:{line}:13: freeze.strategy: 'fulll' is not allowed (did you mean 'full'?)" in out.stderr


# ---------------------------------------------------------------- what changed, after resolution


def test_writing_a_default_explicitly_is_no_change(tmp_path, capsys):
    old = write(tmp_path, "old.yaml", LLAMA)
    new = write(tmp_path, "new.yaml", LLAMA.replace("  batch_size: 8\n", "  batch_size: 8\n  gradient_accumulation: 1\n  seed: 42\n")
                .replace("init: scratch", "init: scratch\n  dtype: auto"))
    assert diff(old, new) == 0
    assert "no change after resolution" in capsys.readouterr().out


def test_changed_added_and_removed_keys(tmp_path, capsys):
    old = write(tmp_path, "old.yaml", LLAMA)
    new = write(tmp_path, "new.yaml", lora(LLAMA).replace(", num_key_value_heads: 4}", "}").replace("  seed: 42\n", ""))
    assert diff(old, new) == 0
    out = capsys.readouterr().out
    assert "~ freeze.strategy: full -> lora" in out
    assert "+ freeze.lora.r: 16 (added)" in out and "freeze.lora: null" not in out  # defaults filled in
    assert "~ output.save: full -> adapter" in out  # a default that depends on the strategy
    assert "- model.config.num_key_value_heads: 4 (removed)" in out


def test_lists_of_mappings_are_compared_by_index_and_lists_of_scalars_whole():
    old = {"data": {"augment": [{"name": "noise", "p": 0.5}, {"name": "speed", "p": 0.3}]}, "training": {"adam_betas": [0.9, 0.999]}}
    new = {"data": {"augment": [{"name": "noise", "p": 0.8}]}, "training": {"adam_betas": [0.9, 0.95]}}
    assert flatten(old)["data.augment.1.name"] == "speed" and flatten(old)["training.adam_betas"] == [0.9, 0.999]
    assert key_changes(old, new) == [
        KeyChange("data.augment.0.p", 0.5, 0.8),
        KeyChange("data.augment.1.name", "speed", key_changes(new, old)[1].old),
        KeyChange("data.augment.1.p", 0.3, key_changes(new, old)[2].old),
        KeyChange("training.adam_betas", [0.9, 0.999], [0.9, 0.95]),
    ]
    assert [c.kind for c in key_changes(old, new)] == ["changed", "removed", "removed", "changed"]
    assert [c.kind for c in key_changes(new, old)] == ["changed", "added", "added", "changed"]
    assert key_changes({"a": 1, "b": True}, {"a": 1.0, "b": 1}) == [KeyChange("a", 1, 1.0), KeyChange("b", True, 1)]


# ---------------------------------------------------------------- what it does


def test_impact_rows_come_from_the_planner(tmp_path, capsys):
    old, new = write(tmp_path, "old.yaml", LLAMA), write(tmp_path, "new.yaml", lora(LLAMA))
    assert diff(old, new) == 0
    out = capsys.readouterr().out
    rows = {line.split("  ")[1]: line for line in out.split("what it does:\n")[1].splitlines() if line.startswith("  ")}
    assert "1.20M (full) -> 40.0K (lora)" in rows["trainable parameters"] and "-1.16M (-97%)" in rows["trainable parameters"]
    assert "1.20M -> 1.20M" in rows["total parameters"] and rows["total parameters"].endswith("same")
    assert "8.00 GiB of 12.00 GiB, fits -> 16.00 GiB of 12.00 GiB, does not fit" in rows["memory per device"]
    assert rows["memory per device"].endswith("+8.00 GiB (+100%)")
    assert "13.7 MiB -> 468.8 KiB" in rows["checkpoint size"] and rows["checkpoint size"].endswith("(-97%)")
    assert "1,952 -> 1,952" in rows["train examples"]
    assert "976 -> 488" in rows["optimizer steps"] and "3.00 PFLOP -> 1.50 PFLOP" in rows["training compute"]
    assert "unknown -> unknown" in rows["training time"] and rows["training time"].endswith("n/a")
    assert "new warnings:\n  ! LoRA rank 16 on a tiny model" in out and "fewer than 1K examples" not in out


def test_a_side_that_cannot_plan_is_shown_unavailable(tmp_path, capsys):
    old, new = write(tmp_path, "old.yaml", LLAMA), write(tmp_path, "new.yaml", lora(LLAMA))

    def planner(result):
        if result.source == old:
            raise NotImplementedError("this modality has no plan")
        return FakePlan(result)

    assert diff(old, new) == 0 and diff(old, new, planner=planner) == 0
    out = capsys.readouterr().out.split("ftrecipe diff")[-1]
    trainable = next(line for line in out.splitlines() if line.startswith("  trainable parameters"))
    assert "unavailable -> 40.0K (lora)" in trainable and trainable.endswith("n/a")
    assert f"note: OLD ({old}): plan unavailable: NotImplementedError: this modality has no plan" in out


def test_markdown_is_a_table_for_a_pull_request(tmp_path, capsys):
    old, new = write(tmp_path, "old.yaml", LLAMA), write(tmp_path, "new.yaml", lora(LLAMA))
    assert diff(old, new, "markdown") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"### `{old}` → `{new}`\n")
    assert "| key | before | after |\n|---|---|---|\n| `freeze.strategy` | `full` | `lora` |" in out
    assert "| `freeze.lora.r` | - | `16` |" in out
    assert "| | before | after | change |\n|---|---|---|---|\n| trainable parameters | 1.20M (full) | 40.0K (lora) | -1.16M (-97%) |" in out
    assert "**New warnings**\n\n- LoRA rank 16 on a tiny model" in out


# ---------------------------------------------------------------- end to end, the real plan


@pytest.mark.e2e
def test_end_to_end_through_the_cli_with_the_real_plan(tmp_path):
    """Waits for ``ftrecipe.plan.build.plan_recipe``: until it exists both sides are unavailable."""
    old, new = write(tmp_path, "old.yaml", LLAMA), write(tmp_path, "new.yaml", lora(LLAMA))
    out = run_cli("diff", old, new)
    assert out.returncode == 0, out.stderr
    assert "~ freeze.strategy: full -> lora" in out.stdout and "~ training.batch_size: 8 -> 16" in out.stdout
    assert "unavailable" not in out.stdout, out.stdout
    trainable = next(line for line in out.stdout.splitlines() if line.startswith("  trainable parameters"))
    assert "(full) ->" in trainable and "(lora)" in trainable and "%" in trainable
    markdown = run_cli("diff", old, new, "--format", "markdown")
    assert markdown.returncode == 0 and "| memory per device |" in markdown.stdout


def test_diff_stays_torch_free_until_it_plans(tmp_path):
    """Reading, validating and comparing recipes is the light part: a bad recipe is reported without torch."""
    good, bad = write(tmp_path, "good.yaml", LLAMA), write(tmp_path, "bad.yaml", LLAMA.replace("epochs: 4", "epochs: four"))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftrecipe", "diff", good, bad], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "training.epochs" in out.stderr
    modules = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "import time:" in line}
    assert "ftrecipe" in modules and not modules & {"torch", "transformers", "diffusers", "ultralytics", "peft", "accelerate"}


def test_end_to_end_on_a_modality_the_plan_already_covers(tmp_path):
    """The real planner through the CLI on the YOLO demo: a bigger batch on a named GPU."""
    pytest.importorskip("ultralytics", reason="the yolo extra")
    yolo = (ROOT / "recipes" / "demo" / "yolo.yaml").read_text()
    assert "  batch_size: 16\n" in yolo and "  accelerator: cpu\n" in yolo
    new = yolo.replace("  batch_size: 16\n", "  batch_size: 32\n").replace("  accelerator: cpu\n", "  accelerator: cuda\n  gpu: t4\n")
    out = run_cli("diff", write(tmp_path, "old.yaml", yolo), write(tmp_path, "new.yaml", new))
    assert out.returncode == 0, out.stderr
    assert "~ hardware.gpu: null -> t4" in out.stdout and "unavailable" not in out.stdout
    rows = {line.split("  ")[1]: line for line in out.stdout.split("what it does:\n")[1].splitlines() if line.startswith("  ")}
    assert rows["trainable parameters"].endswith("same") and ", fits" in rows["memory per device"]
    assert "(+" in rows["memory per device"] and "(-50%)" in rows["optimizer steps"] and "on t4" in rows["training time"]
