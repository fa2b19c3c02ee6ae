"""Checkpoints hold what training changes; the frozen weights are checked at resume, never copied.

A LoRA or QLoRA run freezes nearly all of its model, and Accelerate's ``save_state`` writes the whole
state dict into every checkpoint: about 4.4 GB for a 7B QLoRA base and 23 GB for Falcon-40B, every
``checkpoint_every`` steps, where the adapters and their optimizer state are a fraction of that. Frozen
weights do not change during a run, so a checkpoint keeps the trainable weights, every buffer (a frozen
BatchNorm's statistics still move) and the modules' extra state, and a resume rebuilds the rest from the
recipe's base as the run did. A digest of the frozen weights, taken as the model is built, goes into
the checkpoint's ``state.json``; a resume whose base differs (a local folder rewritten, a hub model moved
on) is refused rather than mixed with adapters trained on another base.

One rule on every save path: Accelerate's own (one process, DDP) through its save and load hooks,
DeepSpeed's engine through its ``exclude_frozen_parameters``, FSDP's distributed checkpoint through
``ignore_frozen_params`` (see ``sharding.py``). A checkpoint written whole by an earlier release still loads.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ftrecipe.errors import RunFailure

SAMPLES_PER_TENSOR = 4096
"""Elements of each frozen tensor that the digest reads, evenly spaced: another base differs in nearly
every element, and a 40B model's digest reads a few megabytes instead of all of its memory."""


def kept_keys(model: torch.nn.Module) -> set[str]:
    """The state-dict keys a checkpoint keeps: trainable parameters (under every name they are tied to)
    and buffers. Everything else in the state dict is a frozen weight or something derived from one
    (a 4-bit weight's quantisation statistics)."""
    trainable = {name for name, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    return trainable | {name for name, _ in model.named_buffers(remove_duplicate=False)}


def keeps(key: str, kept: set[str]) -> bool:
    return key in kept or key.endswith("_extra_state")


def without_frozen(state: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """``state`` (``model``'s state dict) less its frozen weights, still an ``OrderedDict``: only from one
    does Accelerate drop the second name of tied weights, which safetensors refuses to write twice."""
    kept = kept_keys(model)
    return OrderedDict((key, value) for key, value in state.items() if keeps(key, kept))


def frozen_digest(model: torch.nn.Module) -> str | None:
    """A digest of the frozen parameters' names, shapes, types and sampled values; None when nothing is
    frozen (the checkpoint then holds the whole model)."""
    digest = hashlib.sha256()
    frozen = sorted(((name, p) for name, p in model.named_parameters() if not p.requires_grad), key=lambda item: item[0])
    if not frozen:
        return None
    for name, parameter in frozen:
        digest.update(f"{name}:{tuple(parameter.shape)}:{parameter.dtype};".encode())
        if parameter.is_meta:  # (not materialised on this process: its shape and type are what it has)
            continue
        values = parameter.detach().reshape(-1)
        if values.numel() > SAMPLES_PER_TENSOR:
            positions = torch.linspace(0, values.numel() - 1, SAMPLES_PER_TENSOR, device=values.device).long()
            values = values[positions]
        sample = values.to("cpu", torch.float64) if values.is_floating_point() else values.to("cpu", torch.int64)
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:32]


def check_same_base(stored: str | None, current: str | None, checkpoint: Path) -> None:
    """Refuse to resume onto frozen weights other than those the checkpoint was trained on."""
    if stored is not None and stored != current:
        raise RunFailure(
            f"the frozen weights differ from those checkpoint {checkpoint.name} was trained on: the base model "
            "(model.base: its files or its revision) changed since, and the checkpoint holds only what trains; "
            "resume with the same base, or start a new --output"
        )


def _model_file(directory: Path, index: int) -> Path:
    """Where Accelerate's ``save_state`` writes its ``index``-th prepared model."""
    return directory / (f"model_{index}.safetensors" if index else "model.safetensors")


def load_without_frozen(model: torch.nn.Module, path: Path) -> None:
    """Load a checkpoint's model file into ``model``: every key it must hold (trainable weights, buffers)
    present, nothing it does not know; the frozen weights stay as built."""
    from safetensors.torch import load_model

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    missing, unexpected = load_model(model, str(path), strict=False, device=str(device))
    check_loaded(model, missing, unexpected, f"checkpoint {path.parent.name}")


def check_loaded(model: torch.nn.Module, missing: Iterable[str], unexpected: Iterable[str], what: str) -> None:
    """After a non-strict load of ``what`` into ``model``: refuse it if a key it must hold was missing or a
    key the model does not know was there (only the frozen weights may be absent)."""
    kept = kept_keys(model)
    lacking, unknown = [key for key in missing if keeps(key, kept)], list(unexpected)
    if lacking or unknown:
        raise RunFailure(f"{what} does not match the model: missing {lacking[:5]}, unexpected {unknown[:5]}; "
                         "start a new --output")


def keep_frozen_out(accelerator: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make ``accelerator``'s ``save_state``/``load_state`` leave the frozen weights out; returns the
    keyword arguments for those two calls (DeepSpeed's engine saves the model itself)."""
    if "DEEPSPEED" in str(accelerator.distributed_type):
        return {"exclude_frozen_parameters": True}, {"load_module_strict": False}

    def before_save(models: list[torch.nn.Module], weights: list[dict[str, Any]], _directory: str) -> None:
        for index, (model, state) in enumerate(zip(models, weights)):
            weights[index] = without_frozen(state, model)

    def before_load(models: list[torch.nn.Module], directory: str) -> None:
        if not all(_model_file(Path(directory), index).is_file() for index in range(len(models))):
            return  # not files of ours (a .bin written by hand): Accelerate's own load reports what is wrong
        for index, model in enumerate(models):
            load_without_frozen(model, _model_file(Path(directory), index))
        models.clear()  # loaded: Accelerate's strict load would refuse the missing frozen weights

    accelerator.register_save_state_pre_hook(before_save)
    accelerator.register_load_state_pre_hook(before_load)
    return {}, {}
