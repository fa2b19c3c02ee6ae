"""The plugin registry: loads ``ftrecipe`` entry points into pluggy and collects their records.

A plugin that fails to import, or whose hook raises, is recorded with its error and skipped: the
command line keeps working and `ftrecipe plugins` shows what went wrong. Two plugins that claim one
name are a :class:`PluginConflict` naming both distributions.
"""

from __future__ import annotations

import difflib
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from types import ModuleType
from typing import TypeVar

import pluggy

from ftrecipe import hookspec
from ftrecipe.records import Augmentation, Callback, DatasetFormat, Metric, Modality, Record
from ftrecipe.sections import RecipeBase, Section, section_of

ENTRY_POINT_GROUP = "ftrecipe"
BUILTIN_DISTRIBUTION = "ftrecipe"
HOOKS = ("ftrecipe_modalities", "ftrecipe_dataset_formats", "ftrecipe_augmentations", "ftrecipe_metrics", "ftrecipe_callbacks")

R = TypeVar("R", bound=Record)


class PluginConflict(Exception):
    """Two plugins registered the same name for the same kind of record."""


@dataclass
class PluginInfo:
    """What `ftrecipe plugins` shows about one registered (or failed) plugin."""

    name: str
    module: str
    distribution: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Registry:
    """Everything the installed plugins contribute, by kind and name."""

    plugins: list[PluginInfo]
    modalities: dict[str, Modality]
    dataset_formats: dict[tuple[str, str], DatasetFormat]
    """Keyed by (modality, format name): each modality may have its own ``synthetic``."""
    augmentations: dict[tuple[str, str], Augmentation]
    metrics: dict[tuple[str, str], Metric]
    callbacks: dict[str, Callback]
    conflicts: list[str]
    recipe_classes: dict[str, type] = field(default_factory=dict, repr=False)
    """Cache of :func:`ftrecipe.schema.recipe_class` results."""

    def check_conflicts(self) -> None:
        """Raise :class:`PluginConflict` if two plugins claimed one name."""
        if self.conflicts:
            raise PluginConflict("; ".join(self.conflicts))

    def formats_for(self, modality: str) -> dict[str, DatasetFormat]:
        return {name: rec for (mod, name), rec in self.dataset_formats.items() if mod == modality}

    def augmentations_for(self, modality: str) -> dict[str, Augmentation]:
        return {name: rec for (mod, name), rec in self.augmentations.items() if mod == modality}

    def metrics_for(self, modality: str) -> dict[str, Metric]:
        return {name: rec for (mod, name), rec in self.metrics.items() if mod == modality}

    def failed_plugins(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error]


def _distribution_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"], dist.version


def _as_list(result: object) -> list:
    if result is None:
        return []
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]


EXTENSIBLE_SECTIONS = ("freeze", "head", "training", "hardware", "evaluation", "output")
"""Shared sections a modality may extend (``Modality.sections``)."""


def _names_a_core_key(dotted: str) -> bool:
    node: type[Section] | None = RecipeBase
    for part in dotted.split("."):
        if node is None or part not in node.model_fields:
            return False
        node = section_of(node.model_fields[part].annotation)
    return True


def record_problems(record: Record) -> list[str]:
    """What is wrong with a record as declared (a plugin author's mistake, reported by `ftrecipe plugins`)."""
    problems = []
    for key in getattr(record, "ignores", {}):
        if not _names_a_core_key(key):
            problems.append(f"ignores names '{key}', which is no key of a recipe's shared sections")
    for name, section in getattr(record, "sections", {}).items():
        core = section_of(RecipeBase.model_fields[name].annotation) if name in EXTENSIBLE_SECTIONS else None
        if core is None:
            problems.append(f"sections names '{name}'; a modality may extend {', '.join(EXTENSIBLE_SECTIONS)}")
        elif not (isinstance(section, type) and issubclass(section, core)):
            problems.append(f"sections['{name}'] must subclass ftrecipe.plugin.{core.__name__}")
    return [f"{type(record).__name__} '{record.name}': {problem}" for problem in problems]


def _collect(info: PluginInfo, manager: pluggy.PluginManager, results: dict[str, list]) -> None:
    """Call each hook the plugin implements; on any failure the whole plugin is skipped."""
    collected: dict[str, list] = {}
    for hook in HOOKS:
        impls = [impl for impl in getattr(manager.hook, hook).get_hookimpls() if impl.plugin_name == info.name]
        for impl in impls:
            try:
                records = _as_list(impl.function())
            except Exception as error:  # a plugin's bug must not take the CLI down
                info.error = f"{hook} raised {type(error).__name__}: {error}"
                return
            problems = [problem for record in records for problem in record_problems(record)]
            if problems:
                info.error = f"{hook}: {'; '.join(problems)}"
                return
            collected[hook] = [replace(record, plugin=info.name) for record in records]
            info.hooks.append(hook)
    for hook, records in collected.items():
        results[hook].extend((info, record) for record in records)


def _index(
    pairs: Iterable[tuple[PluginInfo, R]], key_of, kind: str, conflicts: list[str]
) -> dict:
    index: dict = {}
    owners: dict = {}
    for info, record in pairs:
        key = key_of(record)
        for one_key in key if isinstance(key, list) else [key]:
            if one_key in index:
                other = owners[one_key]
                label = one_key if isinstance(one_key, str) else f"{one_key[1]}' for modality '{one_key[0]}"
                conflicts.append(
                    f"{kind} '{label}' is registered twice: by plugin '{other.name}' "
                    f"(distribution {other.distribution}) and by plugin '{info.name}' "
                    f"(distribution {info.distribution})"
                )
                continue
            index[one_key] = record
            owners[one_key] = info
    return index


def _registration_error(error: Exception) -> str:
    if isinstance(error, pluggy.PluginValidationError) and "unknown hook" in str(error):
        name = str(error).split("unknown hook", 1)[1].split()[0].strip("'")
        hint = difflib.get_close_matches(name, HOOKS, n=1)
        return f"unknown hook '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else f"; hooks: {', '.join(HOOKS)}")
    return f"{type(error).__name__}: {error}"


def build_registry() -> Registry:
    """Load every ``ftrecipe`` entry point into a registry."""
    manager = pluggy.PluginManager(hookspec.PROJECT)
    manager.add_hookspecs(hookspec)
    plugins: list[PluginInfo] = []
    results: dict[str, list] = {hook: [] for hook in HOOKS}

    loaded: list[tuple[PluginInfo, ModuleType | None]] = []
    for entry_point in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        distribution, version = _distribution_of(entry_point)
        info = PluginInfo(
            name=entry_point.name,
            module=entry_point.value,
            distribution=distribution,
            version=version,
            builtin=distribution == BUILTIN_DISTRIBUTION,
        )
        try:
            module = entry_point.load()
        except Exception as error:
            info.error = f"import failed: {type(error).__name__}: {error}"
            info.traceback = traceback.format_exc()  # type: ignore[attr-defined]
            module = None
        loaded.append((info, module))

    for info, module in loaded:
        plugins.append(info)
        if module is None:
            continue
        try:
            manager.register(module, name=info.name)
            manager.check_pending()  # a hook implementation whose name is no hook (a typo) is an error
        except Exception as error:
            info.error = f"registration failed: {_registration_error(error)}"
            if manager.is_registered(module):
                manager.unregister(module)
            continue
        _collect(info, manager, results)

    conflicts: list[str] = []
    return Registry(
        plugins=plugins,
        modalities=_index(results["ftrecipe_modalities"], lambda r: r.name, "modality", conflicts),
        dataset_formats=_index(
            results["ftrecipe_dataset_formats"], lambda r: [(m, r.name) for m in r.modalities], "dataset format", conflicts
        ),
        augmentations=_index(
            results["ftrecipe_augmentations"], lambda r: [(m, r.name) for m in r.modalities], "augmentation", conflicts
        ),
        metrics=_index(results["ftrecipe_metrics"], lambda r: [(m, r.name) for m in r.modalities], "metric", conflicts),
        callbacks=_index(results["ftrecipe_callbacks"], lambda r: r.name, "callback", conflicts),
        conflicts=conflicts,
    )


@cache
def get_registry() -> Registry:
    """The process-wide registry of installed plugins (built once)."""
    return build_registry()
