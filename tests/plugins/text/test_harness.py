"""evaluation.lm_eval, EleutherAI's harness on the causal LM: bad input located (an unknown task, a dataset
that is not here, the library missing), and the before/after report that flags a task that got worse. The
scores themselves are checked end to end against lm-eval's own in test_runs (the LoRA run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe.validation import validate_file
from tests.conftest import ROOT

TASKS = ROOT / "tests" / "fixtures" / "lm_eval_tasks"
LM = ("model:\n  modality: causal-lm\n  base: llama\n  init: scratch\n"
      "data:\n  format: synthetic\n  train_size: 8\n  eval_size: 2\n"
      "hardware:\n  accelerator: cpu\n"
      "evaluation:\n  metrics: [exact_match]\n")


def recipe_with(tmp_path: Path, lm_eval: str):
    """A valid recipe with ``evaluation.lm_eval`` as given, validated: (its path, the validation result)."""
    path = tmp_path / "r.yaml"
    path.write_text(LM + f"  lm_eval:\n{lm_eval}")
    return path, validate_file(path)


def position(path: Path, needle: str) -> str:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return f"{number}:{line.index(needle) + 1}"
    raise AssertionError(needle)


def harness_error(tmp_path: Path, lm_eval: str) -> tuple[Path, str]:
    """The located message `ftrecipe run` prints for the harness settings it refuses when it starts."""
    from ftrecipe_text.harness import Harness

    path, result = recipe_with(tmp_path, lm_eval)
    assert result.ok, [d.text() for d in result.diagnostics]
    with pytest.raises(RecipeRuntimeError) as caught:
        Harness(result.recipe.evaluation.lm_eval, base_dir=tmp_path, smoke=False, seed=0)
    return path, result.diagnostic(caught.value.path, caught.value.message).text()


def test_unknown_task_is_located_with_close_names(tmp_path, monkeypatch):
    import lm_eval.tasks

    asked = []

    class OwnTasksOnly(lm_eval.tasks.TaskManager):
        """lm-eval's TaskManager with the fixture folder standing in for lm-eval's own tasks: indexing those
        takes 10-20 s here, and which names lm-eval ships is its business."""

        def __init__(self, include_path=None, include_defaults=True, **kwargs):
            asked.append(include_defaults)
            super().__init__(include_path=include_path, include_defaults=False, **kwargs)

    monkeypatch.setattr(lm_eval.tasks, "TaskManager", OwnTasksOnly)
    path, text = harness_error(tmp_path, f"    include_path: {TASKS}\n    tasks:\n      - sql_choice\n      - sql_choise\n")
    assert text.startswith(f"{path}:{position(path, 'sql_choise')}: evaluation.lm_eval.tasks[1]: "
                           f"lm-eval has no task 'sql_choise' (nor in {TASKS}); did you mean sql_choice?"), text
    assert asked == [False, True]  # the folder alone first, then lm-eval's own tasks too before saying no


def test_a_dataset_that_is_not_here_names_its_task(tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # the network allowed, as far as the environment says:
        monkeypatch.delenv(name, raising=False)               # the harness goes offline by itself
        monkeypatch.setattr(datasets.config, name, False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    path, text = harness_error(tmp_path, f"    include_path: {TASKS}\n    tasks: [sql_choice, not_here]\n")
    assert text.startswith(f"{path}:{position(path, 'not_here')}: evaluation.lm_eval.tasks[1]: "
                           "lm-eval task 'not_here' cannot load its dataset"), text
    assert "Couldn't reach 'ftrecipe-tests/no-such-dataset' on the Hub (OfflineModeIsEnabled)" in text and "offline is on" in text
    assert datasets.config.HF_HUB_OFFLINE is False and huggingface_hub.constants.HF_HUB_OFFLINE is False  # as they were
    path, text = harness_error(tmp_path, "    include_path: no-such-folder\n    tasks: [sql_choice]\n")
    assert text.startswith(f"{path}:{position(path, 'no-such')}: evaluation.lm_eval.include_path: no such folder: "
                           f"{tmp_path / 'no-such-folder'}"), text


def test_missing_library_is_a_located_install_command(tmp_path, monkeypatch):
    from ftrecipe_text.harness import Harness
    from ftrecipe_text.sections import LmEvalSettings

    for name in [n for n in sys.modules if n.split(".")[0] == "lm_eval"] or ["lm_eval"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: its imports fail
    path, result = recipe_with(tmp_path, "    tasks: [hellaswag]\n")
    assert not result.ok
    texts = [d.text() for d in result.diagnostics]
    install = "needs EleutherAI's lm-eval harness, which is not installed: pip install 'ftrecipe[lm-eval]'"
    assert f"{path}:{position(path, 'tasks: [hellaswag]')}: evaluation.lm_eval: {install}" in texts, texts
    with pytest.raises(RecipeRuntimeError) as caught:
        Harness(LmEvalSettings(tasks=["hellaswag"]), base_dir=tmp_path, smoke=False, seed=0)  # the run's own check
    assert caught.value.path == ("evaluation", "lm_eval") and "pip install 'ftrecipe[lm-eval]'" in caught.value.message


def score(value: float, higher: bool = True):
    from ftrecipe_text.harness import TaskScore

    return TaskScore("acc", value, higher, {"acc": value}, 12)


def test_a_task_that_got_worse_is_flagged_and_the_base_kept_for_resume(tmp_path):
    from ftrecipe_text.harness import Report

    report = Report(tmp_path, write=True)
    metrics, tables, worse = report.record({"a": score(0.5), "b": score(0.5), "c": score(2.0, higher=False)}, is_before=True)
    assert metrics == {"lm_eval/a/acc": 0.5, "lm_eval/b/acc": 0.5, "lm_eval/c/acc": 2.0} and not worse
    assert (tables["a"]["before"], tables["a"]["after"], tables["a"]["delta"]) == (0.5, None, None)
    resumed = Report(tmp_path, write=True)  # a run continued with --resume finds the base model's scores
    metrics, tables, worse = resumed.record({"a": score(0.25), "b": score(0.75), "c": score(3.0, higher=False)}, is_before=False)
    assert metrics == {"lm_eval/a/acc": 0.25, "lm_eval/b/acc": 0.75, "lm_eval/c/acc": 3.0}  # scalars; the change is in the report
    assert {name: (t["before"], t["after"], t["delta"], t["worse"]) for name, t in tables.items()} == {
        "a": (0.5, 0.25, -0.25, True), "b": (0.5, 0.75, 0.25, False), "c": (2.0, 3.0, 1.0, True)}
    assert tables["c"]["higher_is_better"] is False and tables["a"]["metric"] == "acc" and tables["a"]["examples"] == 12
    json.dumps(tables)  # it goes into summary.json as it is
    assert worse == ["lm-eval a: acc 0.5 -> 0.25 (-0.25), worse than the base model",
                     "lm-eval c: acc 2 -> 3 (+1), worse than the base model"]  # lower is better for c
    stored = json.loads((tmp_path / "lm_eval.json").read_text())["tasks"]
    assert {name: (t["before"]["value"], t["after"]["value"], t["worse"]) for name, t in stored.items()} == {
        "a": (0.5, 0.25, True), "b": (0.5, 0.75, False), "c": (2.0, 3.0, True)}
