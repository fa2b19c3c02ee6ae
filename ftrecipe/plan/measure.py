"""What the plan measures on the meta device: parameters as the run will hold them, and one traced step.

Nothing here reads a weight: the task builds its model on the meta device, the recipe's freeze plan is
applied to it as the run applies it (PEFT adapters included), and one forward pass on meta tensors is
traced. The trace records every tensor autograd saves for the backward pass (the activations, each
storage once, parameters excluded), which module saved it, and the FLOPs of the pass.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ftrecipe.freeze import FreezeReport
from ftrecipe.plan.memory import ParamInfo, Trace
from ftrecipe.task import ModalityTask

_PEFT_PREFIXES = ("base_model.model.",)


def top_level(name: str) -> str:
    for prefix in _PEFT_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.split(".", 1)[0]


def quantizable(model: torch.nn.Module, head: list[str]) -> set[int]:
    """Ids of the weights bitsandbytes would quantise: exact ``nn.Linear`` modules outside the head and
    the output embeddings (transformers' integration converts ``type(module) is nn.Linear`` only)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    excluded = {id(m) for name, m in model.named_modules() if any(name == h or name.startswith(h + ".") for h in head)}
    if output is not None:
        excluded.add(id(output))
    return {id(m.weight) for m in model.modules() if type(m) is torch.nn.Linear and id(m) not in excluded}


def _matmul_weights(model: torch.nn.Module) -> set[int]:
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return {id(m.weight) for m in model.modules() if isinstance(m, kinds) and isinstance(getattr(m, "weight", None), torch.Tensor)}


def describe_parameters(model: torch.nn.Module, quantized: set[int]) -> list[ParamInfo]:
    """Every parameter (each storage once, tied weights counted once) as the frozen model holds it."""
    matmul = _matmul_weights(model)
    seen: set[int] = set()
    infos: list[ParamInfo] = []
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        infos.append(ParamInfo(
            name=name, top=top_level(name), numel=param.numel(), itemsize=param.element_size(),
            trainable=param.requires_grad, shape=tuple(param.shape), quantized=id(param) in quantized,
            matmul=id(param) in matmul, adapter="lora_" in name,
        ))
    return infos


def frozen_meta_model(task: ModalityTask) -> tuple[torch.nn.Module, FreezeReport, list[ParamInfo], list[str], int]:
    """The task's meta model with the recipe's freeze plan applied, its parameters, its head, and the
    bytes of its weights as loaded (before quantisation and any upcast)."""
    model = task.plan_model()
    loaded = sum(p.numel() * p.element_size() for p in model.parameters())
    head = list(task.anatomy(model).head)
    quantized = quantizable(model, head) if task.recipe.model.quantization is not None else set()
    with torch.device("meta"):  # adapters (PEFT's LoRA layers) are created and initialised on meta too
        model, report = task.plan_freeze(model)
    return model, report, describe_parameters(model, quantized), head, loaded


# ------------------------------------------------------------------------------------------- trace


class _FusedAttention(torch.autograd.Function):
    """What a fused attention kernel (flash, memory-efficient) keeps for its backward: q, k, v, the
    output and the row log-sum-exp, never the attention matrix."""

    @staticmethod
    def forward(ctx: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: Any) -> torch.Tensor:
        out = query.new_empty(query.shape[:-1] + value.shape[-1:])
        lse = query.new_empty(query.shape[:-1], dtype=torch.float32)
        tensors = [query, key, value, out, lse] + ([mask] if isinstance(mask, torch.Tensor) else [])
        ctx.save_for_backward(*tensors)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # never run: the trace has no backward
        raise NotImplementedError


class _AttentionAsFused(TorchFunctionMode):
    """Route ``scaled_dot_product_attention`` through :class:`_FusedAttention` and count its FLOPs."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0.0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is not F.scaled_dot_product_attention:
            return func(*args, **(kwargs or {}))
        kwargs = dict(kwargs or {})
        query, key, value = args[:3]
        mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
        heads_and_batch = math.prod(query.shape[:-2])
        self.flops += 4.0 * heads_and_batch * query.shape[-2] * key.shape[-2] * query.shape[-1]
        return _FusedAttention.apply(query, key, value, mask)


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


def _named(modules: dict[str, torch.nn.Module], name: str) -> torch.nn.Module | None:
    """The module ``name`` of the unwrapped model, also under PEFT's wrapper."""
    return next((modules[p + name] for p in ("", *_PEFT_PREFIXES) if p + name in modules), None)


def _enter(stack: list[str], label: str, module: Any, args: Any) -> None:
    stack.append(label)


def _leave(stack: list[str], after_head: list[bool] | None, module: Any, args: Any, output: Any) -> None:
    stack.pop()
    if after_head is not None:
        after_head[0] = True


@contextmanager
def _regions(model: torch.nn.Module, units: list[str], head: list[str], stack: list[str], after_head: list[bool]) -> Iterator[None]:
    """Keep ``stack`` naming the innermost unit or head module whose forward is running; once a head
    module has run, what follows (the loss) belongs to the head too."""
    handles = []
    modules = dict(model.named_modules())
    for names, kind in ((units, "unit"), (head, "head")):
        for name in names:
            module = _named(modules, name)
            if module is None:
                continue
            handles.append(module.register_forward_pre_hook(functools.partial(_enter, stack, f"{kind}:{name}")))
            handles.append(module.register_forward_hook(functools.partial(_leave, stack, after_head if kind == "head" else None)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def no_value_checks() -> Iterator[None]:
    """Answer the value-dependent checks libraries make in a forward pass, which meta tensors cannot.

    Without an attention mask and a cache, Transformers' mask builder looks for packed sequences in the
    position ids (``find_packed_sequence_indices``, an ``.item()``). On meta it can only be told "none":
    the plan then counts the causal path (fused attention, no mask), which is what packed rows cost too.
    """
    import sys

    masking = sys.modules.get("transformers.masking_utils")
    original = getattr(masking, "find_packed_sequence_indices", None)
    if original is None:
        yield
        return
    masking.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        masking.find_packed_sequence_indices = original


def forward_as_planned(task: ModalityTask, model: torch.nn.Module, batch_size: int) -> Any:
    """``task.plan_forward`` as the plan runs it (library value checks answered), without recording
    anything: what a plugin's tests call to see that its forward pass runs on meta tensors."""
    with no_value_checks():
        return task.plan_forward(model, batch_size)


def _count_depth(depth: list[int], step: int, module: Any, *args: Any) -> None:
    depth[0] += step


def trace_forward(task: ModalityTask, model: torch.nn.Module, batch_size: int, units: list[str], head: list[str], *,
                  replay: bool = True) -> Trace:
    """Run ``task.plan_forward`` on meta tensors and account for what autograd saves. ``replay``: units
    that repeat an earlier one exactly are not run again (:mod:`ftrecipe.plan.repeats`: same numbers)."""
    from torch.utils.flop_counter import FlopCounterMode

    from ftrecipe.plan.norms import RepeatedNorms
    from ftrecipe.plan.repeats import replaying

    trace = Trace(batch_size=batch_size)
    parameters = {_storage_key(t) for t in [*model.parameters(), *model.buffers()] if t.device.type == "meta"}
    seen: set[int] = set()
    inputs_seen: set[int] = set()
    stack: list[str] = []
    in_model = [0]
    after_head = [False]
    keep: list[torch.Tensor] = []  # saved tensors stay alive, so no storage key is reused mid-trace

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta":
            return tensor
        key = _storage_key(tensor)
        if key in parameters or key in seen:
            return tensor
        seen.add(key)
        keep.append(tensor)
        size = tensor.untyped_storage().nbytes()
        region = stack[-1] if stack else ("outside" if in_model[0] and not after_head[0] else "head")
        if region.startswith("unit:"):
            name = region[5:]
            trace.units[name] = trace.units.get(name, 0) + size
        elif region.startswith("head:") or region == "head":
            trace.head += size
            trace.largest_head = max(trace.largest_head, size)
        else:
            trace.outside += size
        return tensor

    def unit_inputs(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        for value in [*args, *kwargs.values(), *[v for a in args if isinstance(a, tuple) for v in a]]:
            if isinstance(value, torch.Tensor) and value.device.type == "meta" and value.is_floating_point():
                key = _storage_key(value)
                if key not in inputs_seen and key not in parameters:
                    inputs_seen.add(key)
                    keep.append(value)
                    trace.unit_inputs += value.untyped_storage().nbytes()

    modules = dict(model.named_modules())
    found = {name: module for name in units if (module := _named(modules, name)) is not None}
    with ExitStack() as stack_ctx:
        for module in found.values():
            handle = module.register_forward_pre_hook(unit_inputs, with_kwargs=True)
            stack_ctx.callback(handle.remove)
        root_pre = model.register_forward_pre_hook(functools.partial(_count_depth, in_model, 1))
        root_post = model.register_forward_hook(functools.partial(_count_depth, in_model, -1))
        stack_ctx.callback(root_pre.remove)
        stack_ctx.callback(root_post.remove)
        stack_ctx.enter_context(_regions(model, units, head, stack, after_head))
        attention = stack_ctx.enter_context(_AttentionAsFused())
        counter = stack_ctx.enter_context(FlopCounterMode(display=False))
        stack_ctx.enter_context(RepeatedNorms())  # above the counter: a repeated normalisation is not recomputed
        repeats = stack_ctx.enter_context(replaying(found if replay else {}, trace,
                                                    lambda: float(counter.get_total_flops()) + attention.flops))
        stack_ctx.enter_context(no_value_checks())
        stack_ctx.enter_context(torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t))
        task.plan_forward(model, batch_size)
    trace.flops = float(counter.get_total_flops()) + attention.flops + repeats.extra_flops
    keep.clear()
    return trace
