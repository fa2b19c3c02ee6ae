"""Trace a stack of identical layers once, not once per layer.

A 60-layer Falcon traced on meta tensors spends most of its plan in 60 identical layer forwards whose
saved bytes and FLOPs are the same each time. Here each checkpoint unit gets a signature (its class,
its parameters and buffers as shapes, dtypes and trainability, the plain settings of it and its
submodules, and its inputs as the forward receives them). The first three units with a signature are
traced; where the second and third agree exactly (the first may save tensors every layer shares, like
rotary tables, once for all) and saved nothing outside themselves, every later unit with that
signature is replayed: the third's saved bytes and FLOPs are added, and it returns new meta tensors
shaped, strided and sized as the third's outputs, requiring gradients as those did. Anything that does
not match (alternating attention kinds, a unit nested in another, a head inside a unit) is traced as
before, so the plan's numbers are the full trace's numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from ftrecipe.plan.memory import Trace

INDEX_SETTINGS = frozenset({"layer_idx", "layer_id", "layer_number", "layer_index", "block_idx", "idx", "index"})
"""Plain settings that number a layer in its stack; the only settings two identical layers may differ in."""
TRACED = 3
"""Units of one signature traced before the rest may be replayed."""


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str)) or (
        isinstance(value, tuple) and all(_plain(v) for v in value))


def module_signature(module: torch.nn.Module) -> tuple:
    """What makes two units compute the same thing, their inputs aside."""
    parts: list[Any] = []
    for name, sub in module.named_modules():
        settings = tuple(sorted((k, v) for k, v in vars(sub).items()
                                if not k.startswith("_") and k not in INDEX_SETTINGS and _plain(v)))
        tensors = tuple((n, tuple(t.shape), t.dtype, t.requires_grad, t.device.type)
                        for n, t in [*sub._parameters.items(), *sub._buffers.items()] if t is not None)
        hooks = (len(sub._forward_hooks), len(sub._forward_pre_hooks), len(sub._backward_hooks))
        parts.append((name, type(sub).__qualname__, type(sub).__module__, settings, tensors, hooks))
    return tuple(parts)


def value_signature(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.stride(), value.dtype, value.device.type, value.requires_grad,
                value.storage_offset(), value.untyped_storage().nbytes())
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(value_signature(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, value_signature(v)) for k, v in value.items()))
    if _plain(value):
        return value
    return ("object", type(value).__qualname__)


def _is_tensor_tree(value: Any) -> bool:
    """Meta tensors in plain lists, tuples, named tuples and dicts: what :func:`_like` can rebuild (a
    library's output class, like Transformers' ``ModelOutput``, is left to the full trace)."""
    if isinstance(value, torch.Tensor):
        return value.device.type == "meta"
    if type(value) in (list, tuple) or (isinstance(value, tuple) and hasattr(value, "_fields")):
        return all(_is_tensor_tree(v) for v in value)
    if type(value) is dict:
        return all(_is_tensor_tree(v) for v in value.values())
    return value is None or _plain(value)


def _like(value: Any) -> Any:
    """A new meta tensor (tree) with ``value``'s shape, strides, storage size, dtype and ``requires_grad``."""
    if isinstance(value, torch.Tensor):
        storage = torch.empty(value.untyped_storage().nbytes() // value.element_size(), dtype=value.dtype, device="meta")
        storage.requires_grad_(value.requires_grad)
        return storage.as_strided(value.shape, value.stride(), value.storage_offset())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_like(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_like(v) for v in value)
    if isinstance(value, dict):
        return type(value)({k: _like(v) for k, v in value.items()})
    return value


@dataclass
class _Effect:
    """What one traced unit added to the trace, and what it returned."""

    saved: int
    flops: float
    others: tuple[int, int, int]
    output: Any


@dataclass
class _Signature:
    seen: int = 0
    effects: list[_Effect] = field(default_factory=list)
    replay: _Effect | None = None
    refused: bool = False


@dataclass
class Repeats:
    """Replays repeated units during one traced forward (see the module's docstring)."""

    trace: Trace
    flops: Callable[[], float]
    """The FLOPs counted so far by the trace's counters."""
    extra_flops: float = 0.0
    """FLOPs of the replayed units, for the trace's total."""
    signatures: dict[tuple, _Signature] = field(default_factory=dict)

    def _others(self) -> tuple[int, int, int]:
        return self.trace.outside, self.trace.head, self.trace.largest_head

    def forward(self, name: str, original: Callable[..., Any], static: tuple, args: tuple, kwargs: dict) -> Any:
        key = (static, value_signature(args), value_signature(kwargs))
        entry = self.signatures.setdefault(key, _Signature())
        entry.seen += 1
        if entry.replay is not None:
            if entry.replay.saved:  # (the trace names only units that saved something)
                self.trace.units[name] = self.trace.units.get(name, 0) + entry.replay.saved
            self.extra_flops += entry.replay.flops
            return _like(entry.replay.output)
        before_saved, before_flops, before_others = self.trace.units.get(name, 0), self.flops(), self._others()
        output = original(*args, **kwargs)
        if entry.refused:  # (after the TRACED-th unit, a signature is either replayed or refused)
            return output
        effect = _Effect(self.trace.units.get(name, 0) - before_saved, self.flops() - before_flops,
                         tuple(a - b for a, b in zip(self._others(), before_others)),  # type: ignore[arg-type]
                         output)
        if not _is_tensor_tree(output) or any(effect.others):
            entry.refused = True
            return output
        entry.effects.append(effect)
        if entry.seen == TRACED:
            second, third = entry.effects[1], entry.effects[2]
            if (second.saved, second.flops, value_signature(second.output)) == (third.saved, third.flops, value_signature(third.output)):
                entry.replay = third
            else:
                entry.refused = True
            entry.effects = []
        return output


def _nested(units: Collection[torch.nn.Module]) -> bool:
    """Whether one unit holds another (one walk over each unit's submodules, not one per pair)."""
    ids = {id(unit) for unit in units}
    return any(id(inner) in ids for unit in units for inner in itertools.islice(unit.modules(), 1, None))


@contextmanager
def replaying(units: dict[str, torch.nn.Module], trace: Trace, flops: Callable[[], float]) -> Iterator[Repeats]:
    """Within the block, the ``units`` (name -> module, hooks already in place) with a repeated signature
    are replayed. Where one unit holds another, every unit is traced."""
    repeats = Repeats(trace, flops)
    patched: list[tuple[torch.nn.Module, Any]] = []
    if not _nested(units.values()):
        for name, module in units.items():
            static = module_signature(module)
            own = vars(module).get("forward")  # a library's wrapper set on the instance, put back afterwards
            original = module.forward

            def forward(*args: Any, _name: str = name, _original: Any = original, _static: tuple = static,
                        **kwargs: Any) -> Any:
                return repeats.forward(_name, _original, _static, args, kwargs)

            module.forward = forward  # type: ignore[method-assign]
            patched.append((module, own))
    try:
        yield repeats
    finally:
        for module, own in patched:
            if own is None:
                del module.forward
            else:
                module.forward = own  # type: ignore[method-assign]
