"""EleutherAI's lm-eval harness on the causal LM, before and after training.

Exact match measures what the fine-tune was for; the harness's tasks measure what it may have cost (a
regression on general ability). It runs at the evaluations before and after training only (the runner
says which, ``TaskContext.evaluation``), not the periodic ones: a benchmark costs far more than the
eval loss. Each task's main metric goes into the evaluation's metrics as ``lm_eval/<task>/<metric>`` (so
into ``summary.json``, ``metrics.jsonl`` and the trackers); per task the score before and after and the
change are the evaluation's report ``lm_eval`` (summary.json's ``eval_report.lm_eval``); ``lm_eval.json``
in the run's folder keeps every metric before and after, and a task that got worse is said on the console.

The harness runs in-process on the model being trained (for LoRA the adapted model, which scores as the
merged one does), offline unless the recipe says otherwise, with the training's random state left as it
was. What it writes to the console itself (progress bars) goes to ``lm_eval.log`` in the run's folder.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import json
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftrecipe.plugin import SMOKE_EVAL_EXAMPLES, RecipeRuntimeError

INSTALL = "pip install 'ftrecipe[lm-eval]'"
PREFIX = "lm_eval"
REPORT_FILE = "lm_eval.json"
LOG_FILE = "lm_eval.log"
KEY = ("evaluation", "lm_eval")


def installed() -> bool:
    """Whether the harness can be imported (torch-free: `ftrecipe validate` asks)."""
    try:
        return importlib.util.find_spec("lm_eval") is not None
    except ValueError:  # a module object without a spec stands in for it
        return "lm_eval" in sys.modules and sys.modules["lm_eval"] is not None


@dataclass
class TaskScore:
    """One task's result: its main metric, and all the metrics the task reports."""

    metric: str
    value: float
    higher_is_better: bool
    metrics: dict[str, float] = field(default_factory=dict)
    examples: int | None = None


def scores_of(output: dict[str, Any], tasks: list[str], first_index: int = 0) -> dict[str, TaskScore]:
    """lm-eval's results -> a score per requested task (a group's is its aggregate). The main
    metric is ``acc_norm`` where the task has it (what leaderboards report for multiple choice), else the
    first metric the task lists; filters other than ``none`` are named after the metric."""
    results, better = output.get("results", {}), output.get("higher_is_better", {})
    samples = output.get("n-samples", {})
    scores = {}
    for name in tasks:
        metrics: dict[str, float] = {}
        higher: dict[str, bool] = {}
        for key, value in results.get(name, {}).items():
            metric, _, kind = key.partition(",")
            if not kind or metric.endswith("_stderr") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            shown = metric if kind == "none" else f"{metric}_{kind}"
            metrics[shown] = float(value)
            higher[shown] = bool(better.get(name, {}).get(metric, True))
        if not metrics:
            raise RecipeRuntimeError(KEY + ("tasks", first_index + tasks.index(name)), f"lm-eval task {name!r} reported no metric "
                                     "(a group without an aggregate metric: name its tasks instead)")
        main = "acc_norm" if "acc_norm" in metrics else next(iter(metrics))
        count = samples.get(name, {}).get("effective")
        scores[name] = TaskScore(main, metrics[main], higher[main], metrics, count)
    return scores


@contextlib.contextmanager
def _state_kept() -> Iterator[None]:
    """The training's random streams as they were: evaluating (or not) never changes what trains next."""
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def _offline(offline: bool) -> Iterator[None]:
    """No network for the harness's datasets: the variables for what reads them later, and the flags the
    already imported `datasets` and `huggingface_hub` read on each call."""
    if not offline:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    saved_env = {name: os.environ.get(name) for name in names}
    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    os.environ.update(dict.fromkeys(names, "1"))
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _quiet_console(log: Path | None) -> Iterator[None]:
    """The harness's own console output (its tqdm bars, anything a subprocess writes) into ``log``: file
    descriptor 2 itself, whatever holds it. Datasets' bars are simply off."""
    import datasets

    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    if log is None:  # loading the tasks (before the run's folder exists) writes nothing but those bars
        try:
            yield
        finally:
            if bars:
                datasets.enable_progress_bars()
        return
    target = open(log, "a", encoding="utf-8")  # noqa: SIM115 - closed below, after fd 2 is given back
    sys.stderr.flush()
    kept = os.dup(2)
    os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(kept, 2)
        os.close(kept)
        target.close()
        if bars:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _in_folder(folder: Path | None) -> Iterator[None]:
    """lm-eval reads a task YAML's relative ``data_files`` from the working directory: from the task
    folder here, so that a recipe's tasks travel with it (restored at once after)."""
    if folder is None:
        yield
        return
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


class Harness:
    """The recipe's ``evaluation.lm_eval``: checked and its tasks' data loaded when the run starts (before
    the model loads, so a wrong name or a missing dataset costs seconds, not a training run)."""

    def __init__(self, settings: Any, *, base_dir: Path, smoke: bool, seed: int) -> None:
        self.settings, self.seed = settings, seed
        self.limit = min(settings.limit or SMOKE_EVAL_EXAMPLES, SMOKE_EVAL_EXAMPLES) if smoke else settings.limit
        self.folder: Path | None = None
        if settings.include_path:
            self.folder = (base_dir / settings.include_path).expanduser().resolve()
            if not self.folder.is_dir():
                raise RecipeRuntimeError(KEY + ("include_path",), f"no such folder: {self.folder}")
        try:
            from lm_eval.tasks import TaskManager
        except ImportError as error:
            raise RecipeRuntimeError(KEY, f"needs EleutherAI's lm-eval harness ({error}): {INSTALL}") from error
        self.manager = self._manager(TaskManager)
        for index, name in enumerate(settings.tasks):
            if name not in self.manager.all_tasks:
                close = difflib.get_close_matches(name, self.manager.all_tasks, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                where = f" (nor in {self.folder})" if self.folder else ""
                raise RecipeRuntimeError(KEY + ("tasks", index), f"lm-eval has no task {name!r}{where}{hint}")
        self.loaded = [self._load(index, name) for index, name in enumerate(settings.tasks)]
        for loaded in self.loaded:
            self._prepare(loaded)

    def _manager(self, task_manager: Any) -> Any:
        """Only the recipe's folder where it holds every task named (indexing lm-eval's own thousands of
        task files takes seconds), else lm-eval's tasks and the folder's."""
        if self.folder is not None:
            local = task_manager(include_path=str(self.folder), include_defaults=False)
            if all(name in local.all_tasks for name in self.settings.tasks):
                return local
        return task_manager(include_path=str(self.folder) if self.folder else None)

    def _load(self, index: int, name: str) -> Any:
        """Build the task once, its dataset read (every evaluation reuses it): a dataset that is not here
        is named now, by task. ``TaskManager.load`` where lm-eval has it, its older ``get_task_dict`` else."""
        from lm_eval.tasks import get_task_dict

        load = getattr(self.manager, "load", None) or (lambda names: get_task_dict(names, self.manager))
        try:
            with self._environment(None):
                return load([name])
        except Exception as error:  # noqa: BLE001 - any failure to load is the recipe's task's, said as such
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            offline = ("; evaluation.lm_eval.offline is on: the dataset must be a local file or in the Hugging Face "
                       "cache already (or set offline: false to let the harness download it)") if self.settings.offline else ""
            raise RecipeRuntimeError(KEY + ("tasks", index), f"lm-eval task {name!r} cannot load its dataset: {first}{offline}") from error

    def _prepare(self, loaded: Any) -> None:
        """Few-shot settings as ``simple_evaluate`` makes them: the recipe's count unless a task fixes 0,
        each task's own (or 0) without one; the examples drawn with the training seed."""
        for task in _leaves(loaded):
            fixed = task.get_config("num_fewshot")
            if self.settings.num_fewshot is not None and fixed != 0:
                task.set_config(key="num_fewshot", value=self.settings.num_fewshot)
            elif self.settings.num_fewshot is None and fixed is None:
                task.set_config(key="num_fewshot", value=0)
            task.set_fewshot_seed(seed=self.seed)

    @contextlib.contextmanager
    def _environment(self, log: Path | None) -> Iterator[None]:
        with _state_kept(), _offline(self.settings.offline), _quiet_console(log), _in_folder(self.folder):
            yield

    def evaluate(self, model: Any, tokenizer: Any, log: Path | None = None) -> dict[str, TaskScore]:
        """Score ``model`` (in-memory, as it is: eval mode, its device) on the recipe's tasks: lm-eval's
        ``evaluate`` on the tasks loaded once (``simple_evaluate`` would reload them, reseed the global
        generators, and list the environment's packages through pip every time)."""
        from lm_eval.evaluator import evaluate
        from lm_eval.models.huggingface import HFLM

        scores: dict[str, TaskScore] = {}
        with self._environment(log):
            harness_model = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=self.settings.batch_size)
            for index, (name, loaded) in enumerate(zip(self.settings.tasks, self.loaded)):
                output = evaluate(lm=harness_model, task_dict=loaded, limit=self.limit, log_samples=False, bootstrap_iters=0)
                scores.update(scores_of(output, [name], index))
        return scores


def _leaves(loaded: Any) -> Iterator[Any]:
    """The tasks in what lm-eval loaded: ``TaskManager.load``'s flat ``{"tasks": ...}`` or the older nested
    ``{name or group: task or {...}}``."""
    from lm_eval.api.task import Task

    if isinstance(loaded, Task):
        yield loaded
    elif isinstance(loaded, dict):
        for value in loaded.values():
            yield from _leaves(value)


class Report:
    """Before and after per task, in ``lm_eval.json``: where a resumed run finds the base model's scores."""

    def __init__(self, output_dir: Path, *, write: bool) -> None:
        self.path, self.write = output_dir.resolve() / REPORT_FILE, write  # absolute: the harness runs in its task folder
        self.before: dict[str, TaskScore] | None = None
        if self.path.is_file():  # a run continued with --resume (a new run's folder is empty)
            stored = json.loads(self.path.read_text(encoding="utf-8")).get("tasks", {})
            kept = {name: entry["before"] for name, entry in stored.items() if entry.get("before")}
            self.before = {name: TaskScore(**score) for name, score in kept.items()} or None

    def record(self, scores: dict[str, TaskScore], *, is_before: bool) -> tuple[dict[str, float], dict[str, Any], list[str]]:
        """The evaluation's metrics (each task's main one), its report (per task: the metric, the base model's
        score, this one and the change; ``before`` only, for the base model's own evaluation) and a line for
        each task that scores worse than the base model."""
        if is_before:
            self.before = scores
        metrics: dict[str, float] = {}
        report: dict[str, Any] = {}
        worse: list[str] = []
        tasks: dict[str, Any] = {}
        for name, score in scores.items():
            metrics[f"{PREFIX}/{name}/{score.metric}"] = score.value
            base = None if is_before or self.before is None else self.before.get(name)
            entry: dict[str, Any] = {"metric": score.metric, "before": asdict(base) if base else None,
                                     "after": None if is_before else asdict(score)}
            shown: dict[str, Any] = {"metric": score.metric, "higher_is_better": score.higher_is_better,
                                     "examples": score.examples, "before": None, "after": None, "delta": None, "worse": None}
            if is_before:
                entry["before"] = asdict(score)
                shown["before"] = score.value
            else:
                shown["after"] = score.value
            if base is not None and base.metric == score.metric:
                delta = score.value - base.value
                got_worse = delta < 0 if score.higher_is_better else delta > 0
                entry.update(delta=delta, worse=got_worse)
                shown.update(before=base.value, delta=delta, worse=got_worse)
                if got_worse:
                    worse.append(f"lm-eval {name}: {score.metric} {base.value:.4g} -> {score.value:.4g} ({delta:+.4g}), "
                                 "worse than the base model")
            tasks[name], report[name] = entry, shown
        if self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"tasks": tasks}, indent=2) + "\n", encoding="utf-8")
        return metrics, report, worse
