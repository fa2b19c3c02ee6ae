"""Per-device memory from what the plan measured: arithmetic only, no torch.

The static part (weights, gradients, optimizer states) is exact for a given set of parameters: it
follows how the libraries allocate (PyTorch's AdamW keeps two moments in the parameter's dtype and a
4-byte step per tensor; bitsandbytes' NF4 packs two weights a byte with a block scale per 64).
Activations come from the traced forward, fitted as ``fixed + per_example x batch`` from traces at
batch sizes 1 and 2, and composed for gradient checkpointing from what each checkpointed unit saves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ftrecipe.sections import BITSANDBYTES_OPTIMIZERS

@dataclass(frozen=True)
class ParamInfo:
    """One parameter as the run holds it."""

    name: str
    top: str
    """Top-level module it belongs to (PEFT's wrapper names left out)."""
    numel: int
    itemsize: int
    trainable: bool
    shape: tuple[int, ...]
    quantized: bool = False
    """A weight bitsandbytes quantises (an exact ``nn.Linear`` outside the head)."""
    matmul: bool = False
    """The weight of a Linear/Conv/Embedding-like module: autocast casts it for the matmuls."""
    adapter: bool = False
    """A LoRA adapter's parameter."""


@dataclass
class Trace:
    """Saved tensors of one traced forward, by region, and its FLOPs."""

    batch_size: int
    outside: int = 0
    """Bytes saved outside the checkpoint units and the head (embeddings, final norm, ...)."""
    head: int = 0
    """Bytes saved in the head and the loss (logits, log-softmax)."""
    units: dict[str, int] = field(default_factory=dict)
    """Checkpoint unit -> bytes saved inside it."""
    unit_inputs: int = 0
    """Bytes of the units' tensor inputs (what gradient checkpointing keeps), each storage once."""
    largest_head: int = 0
    """The largest single tensor saved in the head or loss (its gradient is alive beside it)."""
    flops: float = 0.0


GIB = 1 << 30
MIB = 1 << 20
CUDA_CONTEXT = 500 * MIB
"""The CUDA context and kernels: device memory that ``torch.cuda.max_memory_allocated`` does not see."""
WORKSPACES = 256 * MIB
"""cuBLAS/cuDNN workspaces and the allocator's first blocks."""
FRAGMENTATION = 0.05
"""The caching allocator's rounding and fragmentation, as a share of what is allocated."""
HIGH_MARGIN = 0.15
"""The high end of the range: transient buffers of the backward pass and allocator behaviour."""
NF4_BLOCK, NESTED_BLOCK, OPTIM_8BIT_BLOCK, OPTIM_8BIT_MIN = 64, 256, 256, 4096


@dataclass(frozen=True)
class Settings:
    """The recipe's settings the memory depends on (what suggestions vary)."""

    precision: str
    """``fp32``, ``bf16-mixed`` or ``fp16-mixed`` (``auto`` resolved)."""
    optimizer: str
    batch_size: int
    gradient_checkpointing: bool
    world: int
    strategy: str
    zero_stage: int
    cuda: bool
    quantization_bits: int | None = None
    double_quant: bool = True
    autocast_everywhere: bool = True
    """Every layer's input needs a gradient (full, partial, LoRA): autocast's 16-bit weight copies are
    saved for the backward pass in every layer, not only in trained ones."""


@dataclass
class ActivationFit:
    """Activation bytes as ``fixed + per_example * batch`` per region (from traces at batch 1 and 2)."""

    outside: tuple[int, int]
    head: tuple[int, int]
    largest_head: tuple[int, int]
    units: dict[str, tuple[int, int]]
    unit_inputs: tuple[int, int]
    flops_per_example: float

    @classmethod
    def from_traces(cls, one: Trace, two: Trace) -> ActivationFit:
        def fit(a: int, b: int) -> tuple[int, int]:
            per = max(0, b - a)
            return max(0, a - per), per

        return cls(
            outside=fit(one.outside, two.outside),
            head=fit(one.head, two.head),
            largest_head=fit(one.largest_head, two.largest_head),
            units={k: fit(v, two.units.get(k, v)) for k, v in one.units.items()},
            unit_inputs=fit(one.unit_inputs, two.unit_inputs),
            flops_per_example=max(two.flops - one.flops, 0.0) or one.flops,
        )

    @staticmethod
    def at(pair: tuple[int, int], batch: int) -> int:
        return pair[0] + pair[1] * batch

    def activations(self, batch: int, checkpointing: bool) -> int:
        units = [self.at(v, batch) for v in self.units.values()]
        if checkpointing and units:
            return self.at(self.outside, batch) + self.at(self.unit_inputs, batch) + max(units)
        return self.at(self.outside, batch) + sum(units)

    def logits_and_loss(self, batch: int) -> int:
        """What the head and loss save, plus the gradient of the largest of those tensors."""
        return self.at(self.head, batch) + self.at(self.largest_head, batch)


@dataclass
class Estimate:
    breakdown: dict[str, int]
    low: int
    expected: int
    high: int
    notes: list[str] = field(default_factory=list)


def quantized_bytes(numel: int, rows: int, bits: int, double_quant: bool) -> int:
    """Bytes bitsandbytes holds for a quantised weight: 4-bit NF4/FP4 (two values a byte, an absmax per
    block of 64, itself quantised to 8 bits with ``double_quant``) or LLM.int8 (a byte a value, a scale a row)."""
    if bits == 8:
        return numel + 4 * rows
    blocks = math.ceil(numel / NF4_BLOCK)
    packed = (numel + 1) // 2 + 16 * 4  # the 16-entry code table
    if double_quant:
        return packed + blocks + 4 + 4 * math.ceil(blocks / NESTED_BLOCK) + 256 * 4
    return packed + 4 * blocks


def weight_bytes(param: ParamInfo, settings: Settings) -> int:
    if param.quantized and settings.quantization_bits:
        rows = param.shape[0] if param.shape else 1
        return quantized_bytes(param.numel, rows, settings.quantization_bits, settings.double_quant)
    return param.numel * param.itemsize


def optimizer_state_bytes(param: ParamInfo, optimizer: str) -> int:
    """Optimizer state for one trainable parameter after the first step."""
    if optimizer == "adamw":
        return 2 * param.numel * param.itemsize + 4  # exp_avg, exp_avg_sq, and a float32 step tensor
    # paged: the same states, in CUDA unified memory that moves to the host under pressure (counted as resident)
    if optimizer in BITSANDBYTES_OPTIMIZERS:
        if param.numel < OPTIM_8BIT_MIN:
            return 2 * param.numel * 4
        return 2 * param.numel + 2 * 4 * math.ceil(param.numel / OPTIM_8BIT_BLOCK)
    if optimizer == "sgd":
        return param.numel * param.itemsize  # the momentum buffer
    rms = 4  # adafactor: a float32 RMS tensor, and the second moment in float32, factored for matrices
    if len(param.shape) >= 2:
        return rms + 4 * (math.prod(param.shape[:-1]) + math.prod(param.shape[:-2]) * param.shape[-1])
    return rms + 4 * param.numel


def static_bytes(params: Iterable[ParamInfo], settings: Settings) -> dict[str, int]:
    """Weights, LoRA adapters, gradients and optimizer states on one device, before any sharding."""
    params = list(params)
    trainable = [p for p in params if p.trainable]
    out = {
        "weights": sum(weight_bytes(p, settings) for p in params if not p.adapter),
        "lora_adapters": sum(p.numel * p.itemsize for p in params if p.adapter),
        "gradients": sum(p.numel * p.itemsize for p in trainable),
        "optimizer": sum(optimizer_state_bytes(p, settings.optimizer) for p in trainable),
    }
    if settings.optimizer in BITSANDBYTES_OPTIMIZERS and any(p.numel >= OPTIM_8BIT_MIN for p in trainable):
        out["optimizer"] += 2 * 256 * 4  # the two shared quantisation maps
    return out


def fsdp_unit(name: str) -> str:
    """The FSDP unit a parameter is sharded in, as ftrecipe shards: each member of a layer stack
    (``model.layers.3``), and the root for everything else."""
    found = _LAYER.match(name)
    return found.group(1) if found else ""


_LAYER = re.compile(r"^(.*?\.\d+)\.")


def fsdp_gathered_bytes(params: list[ParamInfo], settings: Settings) -> int:
    """What FSDP holds unsharded beside the shards: the root's weights for the whole step, the largest
    layer and the prefetched next one, and that layer's unsharded gradients before their reduce-scatter
    (fp32). Gathered weights are in the compute dtype (bf16 under mixed precision)."""
    gathered = 2 if settings.precision != "fp32" else 4
    units: dict[str, list[ParamInfo]] = {}
    for param in params:
        units.setdefault(fsdp_unit(param.name), []).append(param)
    root = sum(p.numel for p in units.pop("", [])) * gathered
    layers = [(sum(p.numel for p in unit), sum(p.numel for p in unit if p.trainable)) for unit in units.values()]
    largest, largest_trainable = max(layers, default=(0, 0))
    return root + 2 * largest * gathered + 4 * largest_trainable


def save_gather_host_bytes(params: list[ParamInfo]) -> int:
    """Host memory of the first process when a sharded model is saved: the gathered state dict and the
    unsharded copy it is loaded into, both at the trained dtype."""
    return 2 * sum(p.numel * p.itemsize for p in params)


def autocast_copies(params: Iterable[ParamInfo], settings: Settings) -> int:
    """Mixed precision over fp32 weights: the 16-bit copy of each matmul weight autocast makes is saved
    for the backward pass (in every layer when inputs need gradients, else in trained layers)."""
    if settings.precision == "fp32":
        return 0
    return sum(2 * p.numel for p in params if p.matmul and p.itemsize == 4 and not p.quantized
               and (p.trainable or settings.autocast_everywhere))


def estimate(params: list[ParamInfo], fit: ActivationFit, extras: dict[str, int], settings: Settings) -> Estimate:
    """The per-device breakdown, its range, and notes on the split across devices."""
    static = static_bytes(params, settings)
    notes: list[str] = []
    world = max(1, settings.world)
    sharded = {"weights": False, "lora_adapters": False, "gradients": False, "optimizer": False}
    if world > 1:
        if settings.strategy == "fsdp":
            sharded = dict.fromkeys(sharded, True)
            notes.append(f"FSDP full sharding: weights, gradients and optimizer states split over {world} devices")
        elif settings.strategy == "deepspeed":
            stage = settings.zero_stage
            sharded.update(optimizer=True, gradients=stage >= 2, weights=stage >= 3, lora_adapters=stage >= 3)
            notes.append(f"DeepSpeed ZeRO-{stage}: " + ", ".join(k for k, v in sharded.items() if v) + f" split over {world} devices")
    breakdown = {key: (math.ceil(value / world) if sharded[key] else value) for key, value in static.items()}
    if world > 1 and settings.strategy == "ddp":
        breakdown["ddp_buckets"] = static["gradients"]
        notes.append("DDP: every device holds everything, plus gradient buckets the size of the gradients")
    if settings.strategy == "fsdp":  # the runner shards at world size 1 too (one shard, the same code path)
        breakdown["fsdp_gather"] = fsdp_gathered_bytes(params, settings)
        notes.append("FSDP gathers each layer whole for its forward and backward (the next one prefetched), "
                     "and keeps the root's weights (embeddings, head) gathered through the step")
    breakdown["activations"] = fit.activations(settings.batch_size, settings.gradient_checkpointing)
    breakdown["logits_and_loss"] = fit.logits_and_loss(settings.batch_size)
    # under FSDP the gathered weights are already in the compute dtype (counted in fsdp_gather): no autocast copies
    breakdown["autocast_copies"] = 0 if settings.strategy == "fsdp" else autocast_copies(params, settings)
    for name, value in extras.items():
        breakdown[name] = value
    allocated = sum(breakdown.values())
    breakdown["overhead"] = int(FRAGMENTATION * allocated) + ((CUDA_CONTEXT + WORKSPACES) if settings.cuda else 0)
    expected = sum(breakdown.values())
    transient = breakdown["activations"] + breakdown["logits_and_loss"]
    low = expected - min(breakdown["gradients"], transient) - int(FRAGMENTATION * allocated)
    high = int(expected * (1 + HIGH_MARGIN))
    return Estimate(breakdown=breakdown, low=low, expected=expected, high=high, notes=notes)


def verdict(estimate: Estimate, budget: int | None) -> str:
    """``fits`` with the high end inside the budget, ``tight`` with the expected total inside it."""
    if budget is None:
        return "unknown"
    if estimate.high <= budget:
        return "fits"
    if estimate.expected <= budget:
        return "tight"
    return "does not fit"


def human(size: float | None) -> str:
    """Bytes for people: 1.50 GiB, 320.0 MiB."""
    if size is None:
        return "-"
    if abs(size) >= GIB:
        return f"{size / GIB:.2f} GiB"
    if abs(size) >= MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{size / 1024:.1f} KiB"


def duration(hours: float) -> str:
    """3.5 days, 1.5 h, 12 min, 40 s (a change may be negative)."""
    sign, hours = "-" if hours < 0 else "", abs(hours)
    if hours >= 48:
        return f"{sign}{hours / 24:.1f} days"
    if hours >= 1:
        return f"{sign}{hours:.1f} h"
    if hours * 60 >= 1:
        return f"{sign}{hours * 60:.0f} min"
    return f"{sign}{hours * 3600:.0f} s"
