"""What `ftrecipe run` checks before it imports torch: every mistake that needs no model and no heavy library.

Importing torch and a modality's libraries takes seconds; a run that is going to stop on a missing
base model, an occupied output folder or a switch this machine cannot honour says so first. The
checks here read only the recipe, the file system and the Hugging Face cache (``run_checks`` of the
modality); the runner repeats the hardware check with torch's own answer about the device.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from ftrecipe.data import source_paths
from ftrecipe.errors import RecipeRuntimeError, RunFailure
from ftrecipe.registry import Registry
from ftrecipe.runner.outputs import RUN_FILE
from ftrecipe.sections import BITSANDBYTES_OPTIMIZERS, RecipeBase

CXX_COMPILERS = ("c++", "g++", "clang++")
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
"""NVIDIA's control device, ROCm's compute device, WSL's GPU bridge: a Linux machine with none of these
has no device that ``torch.cuda`` could use."""


def output_directory(recipe: RecipeBase, output: str | None, smoke: bool) -> Path:
    """``--output``, else ``output.dir``, else ``runs/<name>`` (``-smoke`` appended for ``--smoke``)."""
    if output:
        return Path(output)
    base = Path(recipe.output.dir or f"runs/{recipe.name}")
    return base.with_name(base.name + "-smoke") if smoke else base


def check_output_directory(directory: Path, resume: bool) -> None:
    """Never overwrite what a person has: an existing run continues only with --resume."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise RunFailure(f"output path {directory} exists and is not a directory")
    contents = [p for p in directory.iterdir() if not p.name.startswith(".")]
    if not contents:
        return
    if (directory / RUN_FILE).exists():
        if not resume:
            raise RunFailure(
                f"{directory} already holds a run; pass --resume to continue it, or choose another --output"
            )
        return
    raise RunFailure(f"{directory} is not empty and holds no ftrecipe run; choose another --output")


def device_without_torch(recipe: RecipeBase, smoke: bool = False) -> str | None:
    """Where the run will be, when that is certain without importing torch: ``cpu`` when asked for, or
    (``auto``) on a Linux machine with no GPU device file; None when only torch can tell."""
    accelerator = recipe.hardware.accelerator
    if accelerator == "cpu":
        return "cpu"
    no_gpu = sys.platform.startswith("linux") and not any(os.path.exists(path) for path in GPU_DEVICE_FILES)
    if not no_gpu:
        return None
    if accelerator == "cuda" and not smoke:  # (--smoke falls back to the CPU by itself)
        raise RunFailure("hardware.accelerator is cuda but no CUDA device is available (use --set hardware.accelerator=cpu)")
    return "cpu"


def check_hardware(recipe: RecipeBase, device_type: str) -> None:
    """Refuse what this device cannot honour (the core switches, the distributed strategy) before any
    process is started or data read."""
    training, strategy = recipe.training, recipe.hardware.strategy
    if strategy in ("deepspeed", "fsdp") and device_type == "mps":
        raise RecipeRuntimeError(("hardware", "strategy"), f"{'DeepSpeed' if strategy == 'deepspeed' else 'FSDP'} has no "
                                                           "MPS backend; use ddp")
    if strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise RecipeRuntimeError(("hardware", "strategy"), "DeepSpeed is not installed: pip install 'ftrecipe[deepspeed]' "
                                                           "(a source package; its CPU kernel compiles on first use), "
                                                           "or use strategy: fsdp")
    if training.optimizer in BITSANDBYTES_OPTIMIZERS and importlib.util.find_spec("bitsandbytes") is None:
        raise RecipeRuntimeError(("training", "optimizer"),
                                 f"{training.optimizer} needs bitsandbytes: pip install 'ftrecipe[gpu]'")
    if training.optimizer == "paged-adamw-8bit" and device_type != "cuda":
        raise RecipeRuntimeError(("training", "optimizer"),
                                 f"paged-adamw-8bit pages its state through CUDA memory, but this run is on {device_type}; "
                                 "use adamw (or adamw-8bit)")
    if training.compile:
        if device_type == "mps":
            raise RecipeRuntimeError(("training", "compile"), "torch.compile has no training backend on MPS; set compile: false")
        if device_type == "cpu" and not any(shutil.which(name) for name in CXX_COMPILERS):
            raise RecipeRuntimeError(("training", "compile"),
                                     "torch.compile on the CPU builds C++ kernels, and no C++ compiler (c++, g++, clang++) "
                                     "is on the PATH; install one or set compile: false")


def preflight(recipe: RecipeBase, base_dir: Path, registry: Registry, *, output: str | None = None, resume: bool = False,
              smoke: bool = False) -> None:
    """Raise the first mistake this run would stop on that can be found without torch: the output folder,
    the data files the format requires, the modality's ``run_checks`` (the base model on this machine; not for --smoke, which needs none),
    and the hardware switches where the device is certain."""
    check_output_directory(output_directory(recipe, output, smoke), resume)
    data_format = registry.dataset_formats.get((recipe.model.modality, recipe.data.format))
    for key in data_format.required_paths if data_format else ():
        if getattr(recipe.data, key, None):
            source_paths(recipe.data, key, base_dir)  # a missing one is a located RecipeRuntimeError
    if not smoke:
        for check in registry.modalities[recipe.model.modality].run_checks:
            for problem in check(recipe, base_dir):
                raise RecipeRuntimeError(problem.path, problem.message)
    device = device_without_torch(recipe, smoke)
    if device is not None and not smoke:  # --smoke turns the switches this device lacks off by itself
        check_hardware(recipe, device)

