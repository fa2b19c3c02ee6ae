"""`ftrecipe plan --probe N`: run N real training steps here and measure what the plan estimated.

The recipe runs through the same runner as `ftrecipe run` (the common loop or the task's own), on
this machine's device, into a temporary directory. Two process-wide hooks watch it without the task's
help: module forward hooks note the models that train (the outermost modules called in training mode)
and an optimizer step hook measures, right after the N-th step, the bytes of their parameters, of the
gradients and of the optimizer's state; then the run is stopped. On CUDA the peak allocated memory of
the steps after the first is measured too.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ftrecipe.registry import get_registry
from ftrecipe.validation import ValidationResult, validate_data


class _ProbeDone(Exception):
    """Raised from the optimizer hook once the N-th step is measured."""


def _tensor_bytes(tensors: Iterable[torch.Tensor], seen: set[tuple[int, int]]) -> int:
    total = 0
    for tensor in tensors:
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset()) if tensor.numel() else (id(tensor), 0)
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


def _quant_state_tensors(param: torch.Tensor) -> list[torch.Tensor]:
    """bitsandbytes keeps a 4-bit weight's block scales (and their own scales) beside it."""
    state = getattr(param, "quant_state", None)
    found: list[torch.Tensor] = []
    while state is not None:
        found += [v for v in (getattr(state, "absmax", None), getattr(state, "code", None), getattr(state, "offset", None))
                  if isinstance(v, torch.Tensor)]
        state = getattr(state, "state2", None)
    scales = getattr(param, "SCB", None)
    return found + ([scales] if isinstance(scales, torch.Tensor) else [])


def _state_tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _state_tensors(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _state_tensors(v)]
    return []


def measure_step(models: list[torch.nn.Module], optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of the training models' parameters (quantisation state included), gradients and optimizer
    state. A model counts if the optimizer trains some of its parameters (a library may run a forward
    in training mode on a model it builds and drops, like Ultralytics' stride probe)."""
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    params: dict[int, torch.Tensor] = {}
    for model in models:
        if not any(id(p) in optimized for p in model.parameters()):
            continue
        for param in model.parameters():
            params.setdefault(id(param), param)
    seen: set[tuple[int, int]] = set()
    weights = _tensor_bytes(params.values(), seen)
    weights += _tensor_bytes([t for p in params.values() for t in _quant_state_tensors(p)], seen)
    gradients = _tensor_bytes([p.grad for p in params.values() if p.grad is not None], set())
    optimizer_bytes = _tensor_bytes([t for state in optimizer.state.values() for t in _state_tensors(state)], set())
    trainable = sum(p.numel() for p in params.values() if p.requires_grad)
    return {"weights": weights, "gradients": gradients, "optimizer": optimizer_bytes, "trainable_parameters": trainable}


class _Watcher:
    """Process-wide hooks: which modules train, and a measurement after the N-th optimizer step."""

    def __init__(self, steps: int, cuda: bool) -> None:
        self.steps, self.cuda, self.count, self.depth = steps, cuda, 0, 0
        self.roots: list[torch.nn.Module] = []
        self.measured: dict[str, int] = {}

    def before_forward(self, module: torch.nn.Module, args: Any) -> None:
        if self.depth == 0 and module.training and all(module is not r for r in self.roots):
            self.roots.append(module)
        self.depth += 1

    def after_forward(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        self.depth = max(0, self.depth - 1)

    def after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.count += 1
        self.depth = 0
        if self.count == 1 and self.cuda and self.steps > 1:
            torch.cuda.reset_peak_memory_stats()
        if self.count >= self.steps:
            self.measured = measure_step(self.roots, optimizer)
            if self.cuda:
                self.measured["peak_allocated"] = int(torch.cuda.max_memory_allocated())
            raise _ProbeDone

    def __enter__(self) -> _Watcher:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.handles = [register_module_forward_pre_hook(self.before_forward),
                        register_module_forward_hook(self.after_forward),
                        register_optimizer_step_post_hook(self.after_step)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()


def local_overrides(recipe: Any, steps: int) -> list[str]:
    """Run here: this machine's device, one process, N steps and no evaluation worth the wait (keys the
    modality does not read are left alone)."""
    from ftrecipe.validation import unread_keys

    overrides = [f"training.max_steps={steps + 1}", "evaluation.before_training=false", "evaluation.max_examples=1"]
    if recipe.hardware.devices != 1 or recipe.hardware.nodes != 1:
        overrides += ["hardware.devices=1", "hardware.nodes=1"]
    if not torch.cuda.is_available():
        overrides.append("hardware.accelerator=cpu")
        if recipe.hardware.precision in ("auto", "fp16-mixed"):  # a CPU run's `auto`; fp16 autocast needs CUDA
            overrides.append("hardware.precision=fp32")
    unread = unread_keys(get_registry(), recipe.model.modality, recipe.data.format)
    return [o for o in overrides if not any(o.startswith(key + ".") or o.startswith(key + "=") for key in unread)]


def probe(result: ValidationResult, steps: int) -> dict[str, Any]:
    """Estimate for this machine, then measure ``steps`` real steps; both per component."""
    from ftrecipe.errors import RunFailure
    from ftrecipe.plan.build import plan_recipe
    from ftrecipe.records import resolve
    from ftrecipe.runner.entry import Run, RunOptions

    if steps < 1:
        raise RunFailure("--probe needs at least 1 step")
    here = validate_data(copy.deepcopy(result.written), source=result.source, overrides=local_overrides(result.recipe, steps))
    if not here.ok:
        raise RunFailure("the recipe cannot run on this machine: " + "; ".join(d.text() for d in here.diagnostics))
    here.base_dir = result.base_dir
    plan = plan_recipe(here).as_dict()
    planned = plan["memory"]
    breakdown = planned["breakdown"]
    cuda = torch.cuda.is_available()
    estimated = {"weights": breakdown["weights"] + breakdown.get("lora_adapters", 0),
                 "gradients": breakdown["gradients"], "optimizer": breakdown["optimizer"],
                 "trainable_parameters": plan["params"]["trainable"]}
    if cuda:
        estimated["peak_allocated"] = planned["per_device_bytes"] - planned["assumptions"]["cuda_context_bytes"]
    assert here.recipe is not None
    task_class = resolve(get_registry().modalities[here.recipe.model.modality].task)
    with tempfile.TemporaryDirectory(prefix="ftrecipe-probe-") as tmp:
        options = RunOptions(output=str(Path(tmp) / "run"), quiet=True, argv=[])
        with _Watcher(steps, cuda) as watcher:
            try:
                Run(here, here.recipe, task_class, options).execute()
            except _ProbeDone:
                pass
    if not watcher.measured:
        raise RunFailure(f"the run ended before {steps} optimizer steps were taken")
    return {"steps": steps, "device": "cuda" if cuda else "cpu", "estimated": estimated, "measured": watcher.measured}
