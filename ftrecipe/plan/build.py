"""`ftrecipe plan`: from a validated recipe to an account of what it will train, need and cost.

The modality's task builds its model on the meta device and traces one forward pass (its ``plan_*``
hooks); :mod:`ftrecipe.plan.memory` turns that into per-device memory; the data, compute and risks
follow. Nothing is downloaded and no weight is read.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftrecipe.gpus import GPUS
from ftrecipe.libraries import switch_checkpointing
from ftrecipe.plan.memory import (ActivationFit, Estimate, ParamInfo, Settings, estimate, save_gather_host_bytes,
                                  static_bytes, verdict)
from ftrecipe.plan.risks import data_warnings, recipe_warnings
from ftrecipe.plan.cache import PlanCache, as_json
from ftrecipe.plan_records import DataGuidance, PlanData
from ftrecipe.records import resolve
from ftrecipe.registry import Registry, get_registry
from ftrecipe.sections import RecipeBase
from ftrecipe.untrusted import counts_only
from ftrecipe.validation import ValidationResult, flatten, resolved_data

UTILISATION = 0.4
"""Model FLOPs utilisation the time estimate assumes: a well-fed fine-tuning run on one modern GPU."""
HOST_BASELINE = 2 << 30
"""Host memory of the process before the model: Python, torch, the libraries, the data pipeline."""
QLORA_UTILISATION = 0.3
"""De-quantising the 4-bit base in every matmul costs about a quarter of the throughput."""


@dataclass
class Footprint:
    """What the meta model and its traced forward give, for one model structure."""

    params: list[ParamInfo]
    trainable: int
    total: int
    fit: ActivationFit
    extras: dict[str, int]
    loaded_bytes: int = 0
    """The weights as loaded from the checkpoint, before quantisation (what host memory passes)."""
    own_loop: bool | None = None
    """The task trains in its own loop and writes its own checkpoints (None: a footprint cached before
    this was recorded)."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Footprint:
        """A footprint read back from the plan cache (:func:`ftrecipe.plan.cache.as_json`)."""
        fit = data["fit"]
        pairs = {name: tuple(fit[name]) for name in ("outside", "head", "largest_head", "unit_inputs")}
        return cls(
            params=[ParamInfo(**{**p, "shape": tuple(p["shape"])}) for p in data["params"]],
            trainable=data["trainable"], total=data["total"], extras=data["extras"], loaded_bytes=data["loaded_bytes"],
            own_loop=data.get("own_loop"),
            fit=ActivationFit(**pairs, units={k: tuple(v) for k, v in fit["units"].items()},  # type: ignore[arg-type]
                              flops_per_example=fit["flops_per_example"]),
        )


def plan_data_from_json(data: dict[str, Any]) -> PlanData:
    guidance = data.get("guidance")
    return PlanData(**{**data, "guidance": DataGuidance(**guidance) if guidance else None})


@dataclass
class Plan:
    """One recipe's plan; :meth:`as_dict` is the stable JSON of ``ftrecipe plan --format json``."""

    recipe: str
    plugin: dict[str, str]
    defaults_used: dict[str, Any]
    params: dict[str, Any]
    memory: dict[str, Any]
    data: dict[str, Any]
    compute: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    speed: dict[str, Any] = field(default_factory=dict)
    """The speed switches as the task will run them (``ModalityTask.speed_settings``; ``auto`` resolved)."""
    checkpoints: dict[str, Any] = field(default_factory=dict)
    """Disk: ``bytes_each`` and ``kept`` (empty for a task with its own loop, whose checkpoints are its library's)."""

    def as_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "plugin": self.plugin, "defaults_used": self.defaults_used, "params": self.params,
                "memory": self.memory, "data": self.data, "compute": self.compute, "speed": self.speed,
                "checkpoints": self.checkpoints, "warnings": self.warnings}


# ------------------------------------------------------------------------------ settings


def planned_precision(recipe: RecipeBase) -> str:
    """``hardware.precision``; ``auto`` is what a run would pick on the declared GPU (bf16 where it has it)."""
    hardware = recipe.hardware
    if hardware.precision != "auto":
        return hardware.precision
    if hardware.accelerator in ("cpu", "mps"):
        return "fp32"
    return "fp16-mixed" if hardware.gpu in ("t4", "v100-16gb", "v100-32gb") else "bf16-mixed"


def settings_of(recipe: RecipeBase) -> Settings:
    quantization = recipe.model.quantization
    return Settings(
        precision=planned_precision(recipe),
        optimizer=recipe.training.optimizer,
        batch_size=recipe.training.batch_size,
        gradient_checkpointing=recipe.training.gradient_checkpointing,
        world=recipe.hardware.devices * recipe.hardware.nodes,
        strategy=recipe.hardware.strategy,
        zero_stage=recipe.hardware.zero_stage,
        cuda=recipe.hardware.accelerator in ("auto", "cuda"),
        quantization_bits=quantization.bits if quantization else None,
        double_quant=quantization.double_quant if quantization else True,
        autocast_everywhere=recipe.freeze.strategy != "transfer",
    )


def budget_of(recipe: RecipeBase) -> int | None:
    if recipe.hardware.memory is not None:
        return int(recipe.hardware.memory)
    gpu = recipe.hardware.gpu
    return GPUS[gpu].memory_bytes if gpu else None


SETTINGS_ONLY = ("training.batch_size", "training.gradient_accumulation", "training.learning_rate", "training.max_steps",
                 "training.epochs", "hardware.memory", "hardware.devices", "hardware.nodes", "hardware.strategy",
                 "hardware.zero_stage")
"""Keys only the plan's own arithmetic reads (a task's measuring hooks must not): a footprint on disk is
remembered across changes of these, and measured afresh when anything else in the recipe changes."""


def measured_key(recipe: RecipeBase) -> dict[str, Any]:
    """What a measured footprint depends on, for the plan cache: the resolved recipe less :data:`SETTINGS_ONLY`."""
    data = recipe.model_dump(mode="json")
    for key in SETTINGS_ONLY:
        section, name = key.split(".")
        data.get(section, {}).pop(name, None)
    return data


def structure_key(recipe: RecipeBase) -> str:
    """What the footprint depends on: the model, its head and its freeze plan (not batch or devices)."""
    return repr((recipe.model.model_dump(), recipe.head.model_dump(), recipe.freeze.model_dump(),
                 recipe.hardware.precision, recipe.hardware.accelerator, recipe.hardware.gpu,
                 getattr(recipe.data, "max_length", None), recipe.data.model_dump()))


# ------------------------------------------------------------------------------ measuring


def make_task(result: ValidationResult, recipe: RecipeBase, registry: Registry, output_dir: Path, *,
              runs_checkpoint_code: bool = False) -> Any:
    """The modality's task for planning; its recipe has ``hardware.precision: auto`` resolved the way the
    plan reads it, so the task loads weights in the dtype of the device the recipe is meant for."""
    from ftrecipe.task import TaskContext

    recipe = recipe.model_copy(deep=True)
    recipe.hardware.precision = planned_precision(recipe)  # type: ignore[assignment]

    task_class = resolve(registry.modalities[recipe.model.modality].task)
    quiet = lambda message: None  # noqa: E731 - the plan reports through its own warnings
    ctx = TaskContext(recipe=recipe, registry=registry, base_dir=Path(result.base_dir), output_dir=output_dir,
                      log=quiet, warn=quiet, runs_checkpoint_code=runs_checkpoint_code)
    return task_class(ctx)


def measure(task: Any, recipe: RecipeBase) -> Footprint:
    """Meta model, freeze plan, two traced forwards (batch 1 and 2)."""
    import torch

    from ftrecipe.plan.measure import frozen_meta_model, trace_forward

    model, report, params, head, loaded = frozen_meta_model(task)
    units = task.plan_checkpoint_units(model)
    extras = task.plan_extras(model)
    precision = planned_precision(recipe)
    compute = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}.get(precision)
    if compute is not None:
        model.to(compute)
    model.train()
    # QLoRA's preparation may have switched checkpointing on: the plan composes it from per-unit numbers
    switch_checkpointing(model, False)
    one = trace_forward(task, model, 1, units, head)
    two = trace_forward(task, model, 2, units, head)
    return Footprint(params=params, trainable=report.trainable, total=report.total,
                     fit=ActivationFit.from_traces(one, two), extras=extras, loaded_bytes=loaded,
                     own_loop=bool(getattr(task, "owns_loop", False)))


class Planner:
    """Plans a recipe and variants of it (the suggestions), measuring each model structure once."""

    def __init__(self, result: ValidationResult, registry: Registry | None = None, *, runs_checkpoint_code: bool = False,
                 cache: bool = True) -> None:
        self.result = result
        self.runs_checkpoint_code = runs_checkpoint_code
        self.registry = registry or get_registry()
        self._footprints: dict[str, Footprint] = {}
        self._tasks: dict[str, Any] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="ftrecipe-plan-")
        recipe = result.recipe
        assert recipe is not None, "plan a valid recipe"
        plugin_package = self.registry.modalities[recipe.model.modality].task.split(".")[0].split(":")[0]
        self.cache = PlanCache(recipe.model_dump(mode="json"), Path(result.base_dir), plugin_package,
                               extra={"runs_checkpoint_code": runs_checkpoint_code}, enabled=cache)

    def task(self, recipe: RecipeBase) -> Any:
        """The modality's task for ``recipe``, one per model structure: a task reads its data (and builds a
        from-config model's tokenizer) once for all the plan hooks."""
        key = structure_key(recipe)
        if key not in self._tasks:
            self._tasks[key] = make_task(self.result, recipe, self.registry, Path(self._tmp.name) / f"run-{len(self._tasks)}",
                                         runs_checkpoint_code=self.runs_checkpoint_code)
        return self._tasks[key]

    def footprint(self, recipe: RecipeBase) -> Footprint:
        key = structure_key(recipe)
        if key not in self._footprints:
            self._footprints[key] = self.cache.remembered("footprint", measured_key(recipe), lambda: measure(self.task(recipe), recipe),
                                                          dump=as_json, load=Footprint.from_json)
        return self._footprints[key]

    def plan_data(self, recipe: RecipeBase) -> PlanData:
        """The task's account of the data (read once; remembered while the recipe and its files stay the same)."""
        return self.cache.remembered("data", recipe.model_dump(mode="json"), lambda: self.task(recipe).plan_data(),
                                     dump=as_json, load=plan_data_from_json)

    def speed_settings(self, recipe: RecipeBase) -> dict[str, Any]:
        return self.cache.remembered("speed", recipe.model_dump(mode="json"), lambda: self.task(recipe).speed_settings(),
                                     dump=lambda value: value, load=dict)

    def estimate(self, recipe: RecipeBase) -> Estimate:
        footprint = self.footprint(recipe)
        return estimate(footprint.params, footprint.fit, footprint.extras, settings_of(recipe))

    def variant(self, overrides: list[str]) -> RecipeBase | None:
        """The recipe with more ``--set`` overrides, if that is a valid recipe for its modality."""
        from ftrecipe.validation import validate_data

        varied = validate_data(copy.deepcopy(self.result.written), source=self.result.source, overrides=overrides,
                               registry=self.registry)
        return varied.recipe if varied.ok else None

    def close(self) -> None:
        self._tmp.cleanup()


# ------------------------------------------------------------------------------ the plan


def defaults_used(result: ValidationResult, recipe: RecipeBase, registry: Registry) -> dict[str, Any]:
    written = flatten(result.written or {})
    resolved = flatten(resolved_data(recipe, registry))

    def chosen(key: str) -> bool:
        return key in written or any(key.startswith(w + ".") for w in written)

    return {key: value for key, value in resolved.items() if not chosen(key) and value not in (None, [], {})}


def step_count(recipe: RecipeBase, train_examples: int | None) -> int | None:
    """Optimizer steps as the runner counts them (``training.max_steps``, else epochs of the data)."""
    from ftrecipe.runner.optim import step_counts

    training, world = recipe.training, recipe.hardware.devices * recipe.hardware.nodes
    if train_examples is None:
        return training.max_steps
    return step_counts(math.ceil(train_examples / (training.batch_size * world)), training)[0]


def compute_section(recipe: RecipeBase, footprint: Footprint, data: PlanData) -> dict[str, Any]:
    """Training FLOPs: the traced forward's FLOPs per example, times (1 forward + the backward: input
    gradients where a trained layer lies below, weight gradients for the trained share) per example seen."""
    training = recipe.training
    world = recipe.hardware.devices * recipe.hardware.nodes
    steps = step_count(recipe, data.train_examples)
    share = footprint.trainable / footprint.total if footprint.total else 1.0
    below = 0.0 if recipe.freeze.strategy == "transfer" and not recipe.freeze.unfreeze_top and not recipe.freeze.train else 1.0
    factor = 1.0 + below + share + (1.0 if training.gradient_checkpointing else 0.0)
    per_example = footprint.fit.flops_per_example * factor * data.mean_fill
    examples = steps * training.batch_size * training.gradient_accumulation * world if steps else None
    flops = per_example * examples if examples else None
    gpu = GPUS.get(recipe.hardware.gpu or "")
    utilisation = QLORA_UTILISATION if recipe.model.quantization else UTILISATION
    hours = None
    if flops and gpu:
        peak = gpu.tflops_fp32 if planned_precision(recipe) == "fp32" else gpu.tflops_16bit
        hours = flops / (world * peak * 1e12 * utilisation) / 3600
    return {"train_flops": flops, "flops_per_example": per_example, "steps": steps, "examples_seen": examples,
            "hours": hours, "gpu": recipe.hardware.gpu, "devices": world, "utilisation": utilisation}


def checkpoint_section(recipe: RecipeBase, footprint: Footprint, settings: Settings) -> dict[str, Any]:
    """What each checkpoint of the common loop writes: the trainable weights and their optimizer state
    (frozen weights are not copied: ``ftrecipe/runner/frozen.py``); buffers, random states and the
    schedule are small beside them and not counted."""
    if footprint.own_loop is not False:
        return {}
    static = static_bytes(footprint.params, settings)
    return {"bytes_each": static["gradients"] + static["optimizer"], "kept": recipe.training.keep_checkpoints}


def data_section(data: PlanData) -> dict[str, Any]:
    guidance = data.guidance
    return {
        "train_examples": data.train_examples,
        "eval_examples": data.eval_examples,
        "amount": data.amount,
        "balance": data.balance,
        "mean_fill": round(data.mean_fill, 4),
        "overlap": data.overlap,
        "guidance": {"minimum": guidance.minimum, "unit": guidance.unit, "source": guidance.source} if guidance else None,
        "unavailable": data.unavailable,
    }


def plan_recipe(result: ValidationResult, *, registry: Registry | None = None, trust_remote_code: bool = False,
                untrusted: bool = False, cache: bool = True) -> Plan:
    """Plan one validated recipe (raises ``RecipeRuntimeError`` for a located mistake, like a base
    whose config is nowhere at hand).

    The checkpoint's own code runs only with ``trust_remote_code`` (the command line's
    ``--trust-remote-code``): the recipe key alone is not enough, so the plan is made from a copy with
    the key off, and a base whose architecture exists only as its own code cannot be planned.
    ``untrusted`` keeps only counts of the data (:func:`ftrecipe.untrusted.counts_only`); ``cache``
    False measures everything afresh (:mod:`ftrecipe.plan.cache`)."""
    from ftrecipe.plan.suggest import suggestions

    recipe = result.recipe
    assert recipe is not None, "plan a valid recipe"
    code_refused = recipe.model.trust_remote_code and not trust_remote_code
    if code_refused:
        recipe = recipe.model_copy(deep=True)
        recipe.model.trust_remote_code = False
        result = copy.copy(result)
        result.recipe = recipe
    planner = Planner(result, registry, runs_checkpoint_code=trust_remote_code, cache=cache)
    try:
        registry = planner.registry
        record = registry.modalities[recipe.model.modality]
        data = planner.plan_data(recipe)
        speed = planner.speed_settings(recipe)
        footprint = planner.footprint(recipe)
        current = planner.estimate(recipe)
        budget = budget_of(recipe)
        found = verdict(current, budget)
        settings = settings_of(recipe)
        by_module: dict[str, dict[str, int]] = {}
        for param in footprint.params:
            entry = by_module.setdefault(param.top, {"total": 0, "trainable": 0})
            entry["total"] += param.numel
            entry["trainable"] += param.numel if param.trainable else 0
        memory = {
            "per_device_bytes": current.expected,
            "breakdown": current.breakdown,
            "range": {"low": current.low, "expected": current.expected, "high": current.high},
            "budget_bytes": budget,
            "verdict": found,
            "suggestions": suggestions(planner, recipe, current, budget) if found in ("does not fit", "tight") else [],
            "host_bytes": footprint.loaded_bytes + HOST_BASELINE,
            **({"host_save_bytes": save_gather_host_bytes(footprint.params) + HOST_BASELINE}
               if settings.strategy == "fsdp" or (settings.world > 1 and settings.strategy == "deepspeed") else {}),
            "assumptions": {
                "precision": settings.precision,
                "micro_batch": settings.batch_size,
                "devices": settings.world,
                "strategy": settings.strategy if settings.world > 1 else "single device",
                "cuda_context_bytes": 500 << 20 if settings.cuda else 0,
                "notes": current.notes,
            },
        }
        return Plan(
            recipe=result.source,
            plugin={"modality": record.name, "plugin": record.plugin},
            defaults_used=defaults_used(result, recipe, registry),
            params={"total": footprint.total, "trainable": footprint.trainable, "strategy": recipe.freeze.strategy,
                    "by_module": by_module},
            memory=memory,
            data=counts_only(data_section(data), recipe.head.labels) if untrusted else data_section(data),
            compute=compute_section(recipe, footprint, data),
            speed=speed,
            checkpoints=checkpoint_section(recipe, footprint, settings),
            warnings=recipe_warnings(recipe, result.base_dir, code_refused=code_refused, unread=record.ignores.keys())
            + ([] if untrusted else data_warnings(data)),
        )
    finally:
        planner.close()
