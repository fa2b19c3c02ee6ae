"""Everything a run leaves behind to be trusted and reproduced.

``recipe.resolved.yaml``, ``run.json``, ``metrics.jsonl``, ``summary.json``, the model card and
the loss curve. Files are written to a temporary name and renamed, so a reader never sees half.
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from ftrecipe.data import file_digest
from ftrecipe.sections import RecipeBase
from ftrecipe.task import EvalResult

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
RESOLVED_FILE = "recipe.resolved.yaml"


def write_atomic(path: Path, content: str | bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str) + "\n")


def add_to_run_info(output_dir: Path, key: str, value: Any) -> None:
    """Add what is known only once the model is built (its speed switches) to run.json."""
    path = output_dir / RUN_FILE
    info = json.loads(path.read_text()) if path.exists() else {}
    info[key] = value
    write_json(path, info)


def resolved_yaml(data: Mapping[str, Any]) -> str:
    """recipe.resolved.yaml from :func:`ftrecipe.validation.resolved_data`: runnable as it is."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    buffer = io.StringIO()
    buffer.write("# The recipe as this run used it, every default filled in.\n")
    yaml.dump(dict(data), buffer)
    return buffer.getvalue()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(where: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def hardware_info(accelerator: Any) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "device": str(accelerator.device),
        "world_size": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "distributed_type": str(accelerator.distributed_type),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def run_info(
    *,
    recipe: RecipeBase,
    recipe_path: Path,
    accelerator: Any,
    data_files: Iterable[Path],
    plugin_distributions: Sequence[str],
    argv: Sequence[str],
) -> dict[str, Any]:
    """run.json: versions, hardware, seed, command line, git commit and data file hashes."""
    libraries = ["ftrecipe", "torch", "transformers", "accelerate", "peft", "datasets", "evaluate", *plugin_distributions]
    files = sorted({Path(p).resolve() for p in data_files})
    return {
        "command": [Path(sys.argv[0]).name, *argv],
        "recipe": str(recipe_path),
        "seed": recipe.training.seed,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in dict.fromkeys(libraries)},
        "hardware": hardware_info(accelerator),
        "git_commit": _git_commit(recipe_path.parent),
        "data_files": {str(p): file_digest(p) for p in files if p.is_file()},
    }


class MetricsLog:
    """``metrics.jsonl``: one object per logged step or evaluation, flushed as it is written. Observers
    (the experiment trackers) get each record as it is appended, and each evaluation's images."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.observers: list[Any] = []
        """Objects with ``on_record(record)`` and ``on_images(kind, step, images)`` (main process only)."""

    def truncate_after(self, step: int) -> None:
        """On resume, drop what was logged after the checkpoint so the log matches an uninterrupted run."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            record = json.loads(line) if line else {}
            if record and record.get("step", 0) <= step and record.get("kind") != "eval_after":
                kept.append(line)
        write_atomic(self.path, "".join(line + "\n" for line in kept))

    def append(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")
            handle.flush()
        for observer in self.observers:
            observer.on_record(record)

    def samples(self, kind: str, step: int, result: EvalResult) -> None:
        """An evaluation's samples and images saved next to the log (:func:`save_samples`), the images
        handed to the observers too."""
        save_samples(self.path.parent, kind, step, result)
        if result.images:
            for observer in self.observers:
                observer.on_images(kind, step, result.images)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


def plot_loss_curve(records: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """loss_curve.png: training loss per step, with evaluation loss where there is one."""
    train = [(r["step"], r["loss"]) for r in records if "loss" in r and r.get("kind") == "train"]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
    axis.plot(*zip(*train), label="train loss")
    if evals:
        axis.plot(*zip(*evals), "o-", label="eval loss")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def save_samples(output_dir: Path, kind: str, step: int, result: EvalResult) -> None:
    """What an evaluation leaves for people: ``<kind>_samples.jsonl`` (predictions next to references,
    before and after training) and its images as ``samples/step-N.png`` (``step-N-<name>.png`` when
    there are several), one per evaluation, so that a subject can be watched appearing."""
    if result.samples and kind in ("eval_before", "eval_after"):
        write_atomic(output_dir / f"{kind}_samples.jsonl", "".join(json.dumps(s, default=str) + "\n" for s in result.samples))
    if result.images:
        folder = output_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in result.images.items():
            stem = f"step-{step}" if len(result.images) == 1 else f"step-{step}-{name}"
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            write_atomic(folder / f"{stem}.png", buffer.getvalue())


def card_metadata(recipe: RecipeBase, task_metadata: Mapping[str, Any], *, smoke: bool) -> dict[str, Any]:
    """The Hugging Face model-card header: what the Hub reads to list and render the model."""
    metadata: dict[str, Any] = {}
    if recipe.model.init == "pretrained" and not smoke:
        metadata["base_model"] = recipe.model.base
    metadata.update({key: value for key, value in task_metadata.items() if key != "tags"})
    metadata = {key: value for key, value in metadata.items() if value is not None}
    tags = ["ftrecipe", recipe.model.modality, recipe.freeze.strategy, *task_metadata.get("tags", [])]
    metadata["tags"] = list(dict.fromkeys(tags))
    return metadata


def _front_matter(metadata: Mapping[str, Any]) -> str:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(dict(metadata), buffer)
    return f"---\n{buffer.getvalue()}---\n\n"


def model_card(
    *,
    recipe: RecipeBase,
    summary: Mapping[str, Any],
    freeze_report: Mapping[str, Any],
    data_report: Mapping[str, Any],
    notes: Sequence[str],
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """A README.md for the saved model, with the metadata header the Hugging Face Hub reads."""
    before, after = summary.get("eval_before") or {}, summary.get("eval_after") or {}
    rows = "\n".join(
        f"| {name} | {before.get(name, '-') if not isinstance(before.get(name), float) else f'{before[name]:.4g}'} | {value:.4g} |"
        for name, value in after.items()
    )
    data = recipe.data
    lines = [
        f"# {recipe.name}",
        "",
        f"Fine-tuned with ftrecipe from `{recipe.model.base}` ({recipe.model.modality}).",
        "",
        "## Training",
        f"- Freeze plan: {freeze_report.get('strategy')}, {freeze_report.get('trainable_parameters', 0):,} of "
        f"{freeze_report.get('total_parameters', 0):,} parameters trained",
        f"- Head: {recipe.head.mode}" + (f" ({', '.join(recipe.head.labels)})" if recipe.head.labels else ""),
        f"- Data: format `{data.format}`, train `{data.train}`, eval `{data.eval}`; "
        f"{data_report.get('train_examples', '?')} training examples",
        f"- Steps: {summary.get('steps')}, seed {recipe.training.seed}, {summary.get('world_size')} process(es)",
        "",
        "## Evaluation",
        "| metric | before | after |",
        "|---|---|---|",
        rows or "| (none) | | |",
        "",
        *notes,
        "",
        "The exact recipe is in `recipe.resolved.yaml` next to this model.",
    ]
    return (_front_matter(metadata) if metadata else "") + "\n".join(lines) + "\n"
