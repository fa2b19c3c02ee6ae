"""Atomic checkpoints: Accelerate's training state plus the loop position and recipe fingerprint.

A checkpoint is written under a temporary name and renamed into place once complete, so a crash or
``kill -9`` can never leave a half-written ``step-N`` behind. ``state.json`` inside it records the
loop position (optimizer step, epoch, batches consumed in the epoch) and the recipe fields that must
not change for the state to be reusable; resume names the fields that did. The model's frozen weights
stay out of it (``frozen.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ftrecipe.errors import RunFailure
from ftrecipe.sections import RecipeBase

PREFIX = "step-"
STATE_FILE = "state.json"

# Fields that may change between a run and its resume: how long it runs and how often it reports.
RESUMABLE_CHANGES = {
    "name",
    "description",
    "training.epochs",
    "training.max_steps",
    "training.eval_every",
    "training.checkpoint_every",
    "training.keep_checkpoints",
    "training.log_every",
    "training.compile",  # compiled layers keep their weight names: a checkpoint loads either way
    "evaluation",
    "output",
    "callbacks",
    "tracking",  # trackers may be added or dropped on resume; the kept ones continue their runs
    "hardware.dataloader_workers",
    "hardware.memory",
}


@dataclass
class LoopState:
    """Where the loop is: enough to continue exactly."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    """Micro-batches of ``epoch`` already consumed."""
    samples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    eval_before: dict[str, float] | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    world_size: int = 1
    """Processes that wrote the checkpoint: the data position and the RNG states are per process."""
    frozen_digest: str | None = None
    """The frozen weights the run trained on, which the checkpoint leaves out (``frozen.py``)."""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def fingerprint(recipe: RecipeBase) -> dict[str, Any]:
    """The recipe's fields that a checkpoint depends on, flattened to dotted keys."""
    flat = _flatten(recipe.model_dump(mode="json"))
    return {
        key: value
        for key, value in sorted(flat.items())
        if not any(key == skip or key.startswith(skip + ".") for skip in RESUMABLE_CHANGES)
    }


def incompatible_fields(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose value differs between a checkpoint and the current recipe."""
    keys = set(stored) | set(current)
    return sorted(k for k in keys if stored.get(k, "<unset>") != current.get(k, "<unset>"))


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(root: Path) -> Path | None:
    dirs = checkpoint_dirs(root)
    return dirs[-1] if dirs else None


def read_state(directory: Path) -> LoopState:
    data = json.loads((directory / STATE_FILE).read_text())
    return LoopState(**data)


def load_compatible_state(directory: Path, recipe: RecipeBase, world_size: int = 1) -> LoopState:
    """The loop state of a checkpoint, refusing (naming the fields) if the recipe changed incompatibly,
    or if it was written by another number of processes: each process's place in the data and its
    random state are its own, so a run resumes at the world size that wrote the checkpoint."""
    stored = read_state(directory)
    if stored.world_size != world_size:
        raise RunFailure(
            f"checkpoint {directory.name} was written by {stored.world_size} process(es) and this run has {world_size}; "
            f"resume with the same hardware.devices x hardware.nodes ({stored.world_size}), or start a new --output"
        )
    changed = incompatible_fields(stored.fingerprint, fingerprint(recipe))
    if changed:
        raise RunFailure(
            f"the recipe changed in ways the checkpoint cannot follow: {', '.join(changed)} "
            f"(checkpoint {directory}); run without --resume into a new --output"
        )
    return stored


@contextlib.contextmanager
def atomic_checkpoint(root: Path, state: LoopState, keep: int, *, is_main: bool = True,
                      barrier: Callable[[], None] = lambda: None) -> Iterator[Path]:
    """The one checkpoint writer: yields an empty temporary directory to write the state into.

    Every process enters; the main process prepares the directory, everyone writes (Accelerate's
    sharded state, a task's own files), then the main process adds ``state.json``, syncs, renames it
    to ``step-N`` and prunes to the newest ``keep``. A crash at any point leaves the previous
    checkpoints intact and no half-written ``step-N``.
    """
    final = root / f"{PREFIX}{state.step:07d}"
    temporary = root / f".tmp-{PREFIX}{state.step:07d}"
    if is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
    barrier()
    yield temporary
    barrier()
    if is_main:
        (temporary / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        for path in temporary.rglob("*"):
            if path.is_file():
                _fsync_file(path)
        _fsync_dir(temporary)
        if final.exists():  # re-saving the same step (e.g. interrupted right after a checkpoint)
            shutil.rmtree(final)
        os.replace(temporary, final)
        _fsync_dir(root)
        for old in checkpoint_dirs(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()


def save_checkpoint(accelerator: Any, root: Path, state: LoopState, keep: int,
                    also: Callable[[Path], None] | None = None, options: dict[str, Any] | None = None) -> Path:
    """Accelerate's training state (model, optimizer, scheduler, RNGs: what it prepared) as one atomic
    checkpoint; ``also`` writes what Accelerate does not hold (a sharded model's shards) into it;
    ``options`` go to ``save_state`` (``frozen.keep_frozen_out``)."""
    state.world_size = accelerator.num_processes
    with atomic_checkpoint(root, state, keep, is_main=accelerator.is_main_process,
                           barrier=accelerator.wait_for_everyone) as directory:
        accelerator.save_state(str(directory), **(options or {}))
        if also is not None:
            also(directory)
    return root / f"{PREFIX}{state.step:07d}"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        try:
            os.fsync(handle.fileno())
        except OSError:
            pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
