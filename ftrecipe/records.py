"""Typed records that plugins return from their hooks.

A record describes a contribution; it never mutates shared state. Heavy code is referenced by an
``"module:attribute"`` string and imported only when a run needs it, so registering a plugin (which
every ``ftrecipe validate`` does) stays cheap and torch-free.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftrecipe.sections import AugmentationSection, DataSection, ModelSection, RecipeBase, Section


@dataclass(frozen=True)
class Problem:
    """A contradiction found by a recipe check: the dotted path it is about, and what is wrong."""

    path: tuple[str | int, ...]
    message: str


def resolve(reference: str) -> Any:
    """Import ``"package.module:attribute"`` (the lazy references records carry)."""
    module_name, _, attribute = reference.partition(":")
    if not attribute:
        raise ValueError(f"reference {reference!r} must look like 'package.module:attribute'")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


@dataclass(frozen=True)
class Modality:
    """A kind of model ftrecipe can fine-tune (``model.modality`` in a recipe).

    ``section`` subclasses :class:`~ftrecipe.sections.ModelSection` with
    ``modality: Literal[name]``; ``task`` names the :class:`~ftrecipe.task.ModalityTask` subclass
    that builds the model, data, loss and evaluation for the runner.

    A recipe must never accept a key that nothing reads: keys of the modality's own go in its
    sections (``section``, and core sections extended through ``sections``); core keys the task
    does not read are listed in ``ignores`` and rejected where a recipe writes them.
    """

    name: str
    section: type[ModelSection]
    task: str
    description: str = ""
    default_metrics: tuple[str, ...] = ()
    starter_recipe: str = ""
    """Commented YAML that `ftrecipe init NAME` writes."""
    checks: tuple[Callable[[RecipeBase], Iterable[Problem]], ...] = ()
    """Cross-field checks run by `ftrecipe validate` after the schema accepted the recipe."""
    run_checks: tuple[Callable[[RecipeBase, Path], Iterable[Problem]], ...] = ()
    """Checks of this machine that `ftrecipe run` makes before it imports torch or your libraries, given
    the recipe and its folder: is the base model here (``ftrecipe.plugin.pretrained_check`` for a Hugging
    Face repository)? Not made by `validate` (a recipe is valid before its model is downloaded) nor for
    ``--smoke`` (which needs no weights). Keep them torch-free and quick: file system and caches only."""
    sections: Mapping[str, type[Section]] = field(default_factory=dict)
    """Core sections this modality extends with keys of its own, e.g. ``{"evaluation": MyEvaluation}``
    where ``MyEvaluation`` subclasses :class:`~ftrecipe.sections.EvaluationSection`. Allowed names:
    ``freeze``, ``head``, ``training``, ``hardware``, ``evaluation``, ``output``."""
    ignores: Mapping[str, str] = field(default_factory=dict)
    """Core keys the task does not read (dotted, e.g. ``"head"`` or ``"training.optimizer"``) -> why;
    a recipe that writes one gets a located error saying so."""
    strategies: tuple[str, ...] = ("ddp",)
    """The ``hardware.strategy`` values the modality trains correctly with (``ddp``, ``fsdp``,
    ``deepspeed``); `ftrecipe validate` refuses the others. Claim ``fsdp`` or ``deepspeed`` once a
    two-process run of your model (both run on CPU processes) saves whole and matches one process (see
    the plugin guide)."""
    plugin: str = field(default="", compare=False)
    """Filled in by the registry: which plugin contributed the record."""


@dataclass(frozen=True)
class DatasetFormat:
    """A way to read examples (``data.format``), for the modalities it names.

    ``reader`` names a function ``read(section, *, base_dir, seed, smoke) -> DatasetSplits``
    (see :mod:`ftrecipe.data`, whose helpers do the shared chores) returning rows in the canonical
    columns the modality documents.
    """

    name: str
    modalities: tuple[str, ...]
    section: type[DataSection]
    reader: str
    description: str = ""
    ignores: Mapping[str, str] = field(default_factory=dict)
    """Core ``data`` keys the reader does not read (``"data.eval"``) -> why; rejected where written."""
    required_paths: tuple[str, ...] = ()
    """Keys of the data section that, where set, name files or folders that must exist (relative to the
    recipe's folder), e.g. ``("train", "eval")``: `ftrecipe run` says which is missing before it
    imports torch (the reader still checks them, through ``source_paths``)."""
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class Augmentation:
    """An on-the-fly augmentation step (an item of ``data.augment``).

    ``apply`` names the function the modality calls; its signature is the modality's (audio:
    ``apply(wave, sample_rate, rng, **params) -> wave``).
    """

    name: str
    modalities: tuple[str, ...]
    section: type[AugmentationSection]
    apply: str
    description: str = ""
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class Metric:
    """An evaluation metric (an item of ``evaluation.metrics``).

    ``load`` names a zero-argument function returning an ``evaluate.EvaluationModule`` that works
    offline (the hub's metric scripts are not reachable at run time).
    """

    name: str
    modalities: tuple[str, ...]
    load: str
    higher_is_better: bool = True
    description: str = ""
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class Callback:
    """A runner callback a recipe can switch on by name (``callbacks: [name]``).

    ``factory`` names a subclass of :class:`ftrecipe.callbacks.RunCallback`.
    """

    name: str
    factory: str
    description: str = ""
    plugin: str = field(default="", compare=False)


Record = Modality | DatasetFormat | Augmentation | Metric | Callback
