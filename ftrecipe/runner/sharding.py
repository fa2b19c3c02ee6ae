"""FSDP: every process holds a shard of the weights, gradients and optimizer state (``hardware.strategy: fsdp``).

Built on PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``) and its distributed checkpoint
(``torch.distributed.checkpoint``), the same code on CUDA (NCCL) and on CPU processes (gloo), so what
a GPU job does is what the suite runs. Accelerate's FSDP integration is not used because it only
engages on accelerator devices: on CPU processes it would silently run plain data parallelism.

- **What is sharded:** each member of every homogeneous layer stack (a transformer's layers; a stack
  nested in another's member first, as FSDP2 requires), then the root, which keeps the rest (embeddings, heads) and the weight ties between them. A PEFT model's
  root is its base model, so that generation (which PEFT routes to the base model) gathers the root's
  weights too.
- **Checkpoints:** every process writes its own shards of the model (less its frozen weights, as every
  checkpoint: ``frozen.py``) and optimizer with ``torch.distributed.checkpoint`` into the checkpoint's
  directory (atomic like every checkpoint);
  Accelerate keeps saving the rest (schedule, RNGs, data position).
- **The saved model:** every process takes part in gathering the full state dict onto the first
  process's host memory, which loads it into a plain copy of the model (built as the run built it,
  freeze plan included) and saves that, once, in the modality's format.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ftrecipe.runner.frozen import check_loaded
from ftrecipe.runner.speed import repeated_blocks

SHARDS_DIR = "sharded"
"""The checkpoint's subdirectory holding every process's model and optimizer shards."""


def _root(model: torch.nn.Module) -> torch.nn.Module:
    base = getattr(model, "get_base_model", None)  # a PEFT model routes generate() to its base model
    return base() if callable(base) else model


def shard_model(model: torch.nn.Module, device_type: str, mixed_precision: str) -> torch.nn.Module:
    """Shard ``model`` in place over all processes; returns it (its parameters become DTensors).

    ``mixed_precision`` is Accelerate's mode (``no``, ``bf16``): with bf16 the gathered weights compute in
    bf16 while the shards, the optimizer and the reduced gradients stay fp32 (what autocast gives a
    single device)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_precision == "bf16" \
        else MixedPrecisionPolicy()
    for block in reversed(repeated_blocks(model)):  # inner stacks first (a UNet's attention holds its own)
        fully_shard(block, mesh=mesh, mp_policy=policy)
    fully_shard(_root(model), mesh=mesh, mp_policy=policy)
    return model


@contextlib.contextmanager
def unsharded_root(model: torch.nn.Module, sharded: bool) -> Iterator[None]:
    """The root's own weights (embeddings, heads, a UNet's outer layers) gathered inside, so that an
    evaluation may call a submodule directly (a Diffusers pipeline calls the UNet, not the model that
    holds it); the layer stacks still gather themselves as they run. A no-op when not ``sharded``."""
    if not sharded:
        yield
        return
    root = _root(model)
    root.unshard()
    try:
        yield
    finally:
        root.reshard()


def save_shards(model: torch.nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Every process writes its shards of the model and optimizer state under ``directory/sharded``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer, options=_trained_only())
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(directory / SHARDS_DIR))


def load_shards(model: torch.nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Every process reads back its shards (written by :func:`save_shards`) into the sharded model."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optimizer_state = get_state_dict(model, optimizer, options=_trained_only())
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(directory / SHARDS_DIR))
    missing, unexpected = set_state_dict(model, optimizer, model_state_dict=state["model"],
                                         optim_state_dict=state["optimizer"], options=_trained_only())
    check_loaded(model, missing, unexpected, f"the sharded checkpoint {directory.name}")


def _trained_only() -> Any:
    """The distributed checkpoint's options for a checkpoint: the frozen weights left out (see ``frozen.py``),
    a load accepting their absence."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(ignore_frozen_params=True, strict=False)


def gather_full_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict on the first process's host memory (empty on the others); every
    process must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_whole(plain: torch.nn.Module, state: dict[str, Any]) -> torch.nn.Module:
    """Load a gathered state dict into an unsharded copy of the model, refusing any key mismatch (a
    model saved with missing or unexpected weights is the failure this module exists to prevent)."""
    missing, unexpected = plain.load_state_dict(state, strict=False)  # copies: tied weights stay tied
    if missing or unexpected:
        raise RuntimeError(f"the gathered FSDP state does not match the model: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return plain
