"""Validate a recipe file: every problem, each located at its line and column.

Pipeline: safe YAML with positions -> ``--set`` overrides -> dispatch on ``model.modality`` ->
pydantic validation of that modality's recipe class -> cross-field checks -> defaults resolved.
Pydantic's error locations are mapped back onto the YAML positions (rendercv's idea), with a
did-you-mean for misspelt keys and the allowed values for enums.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import BaseModel, ValidationError

from ftrecipe.checks import CORE_CHECKS, check_distribution
from ftrecipe.diagnostics import Diagnostic, did_you_mean, dotted
from ftrecipe.overrides import Override, OverrideError, apply_overrides, parse_override
from ftrecipe.registry import Registry, get_registry
from ftrecipe.schema import recipe_class
from ftrecipe.sections import LoraSettings, ModelSection, Quantization, RecipeBase
from ftrecipe.yamlio import MAX_RECIPE_BYTES, LoadedYaml, Path, load_yaml


@dataclass
class ValidationResult:
    """The outcome for one recipe: the validated, defaults-resolved recipe when there were no errors."""

    source: str
    recipe: RecipeBase | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    base_dir: FsPath = FsPath(".")
    locate: _Locator | None = None
    written: Any = None
    """The recipe as written, overrides applied, before defaults: what the user chose."""

    @property
    def ok(self) -> bool:
        return self.recipe is not None and not any(d.severity == "error" for d in self.diagnostics)

    def diagnostic(self, path: Path, message: str) -> Diagnostic:
        """Locate a problem found later (at run time) at the recipe key that caused it."""
        if self.locate is None:
            return Diagnostic(self.source, dotted(path), message)
        return self.locate(path, message)


class _Locator:
    """Turns a data path into a :class:`Diagnostic`, from the file or from the ``--set`` that wrote it."""

    def __init__(self, source: str, loaded: LoadedYaml, overrides: Sequence[Override]) -> None:
        self.source = source
        self.loaded = loaded
        self.overrides = overrides

    def __call__(self, path: Path, message: str, *, prefer_key: bool = False, severity: str = "error") -> Diagnostic:
        for override in reversed(self.overrides):  # the --set that wrote this key, or a key inside it
            if path[: len(override.path)] == override.path or (path and override.path[: len(path)] == path):
                return Diagnostic(f"--set {override.argument}", dotted(path), message, severity=severity)  # type: ignore[arg-type]
        mark = self.loaded.locate(path, prefer_key=prefer_key)
        return Diagnostic(
            self.source, dotted(path), message, mark.line if mark else None, mark.col if mark else None, severity  # type: ignore[arg-type]
        )


# ---------------------------------------------------------------- pydantic error mapping


def _strip_tags(loc: tuple, data: Any) -> Path:
    """Drop the discriminator tags pydantic puts in locations (``data.jsonl.columns`` -> ``data.columns``)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and not any(
            isinstance(v, str) and v == part for v in node.values()
        ):
            path.append(part)  # a key that is missing from the data
            node = None
        # else: a union tag (its value is in the data as the discriminator): skip it
    return tuple(path)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    models: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        models.extend(_models_in(arg))
    return models


def _list_item(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _list_item(typing.get_args(annotation)[0])
    if origin is list:
        return typing.get_args(annotation)[0]
    for arg in typing.get_args(annotation):
        item = _list_item(arg)
        if item is not None:
            return item
    return None


def _pick(models: list[type[BaseModel]], value: Any) -> type[BaseModel] | None:
    """The union member a raw value belongs to, by its Literal discriminator field."""
    if len(models) <= 1 or not isinstance(value, dict):
        return models[0] if models else None
    for model in models:
        for name in ("format", "name", "modality"):
            info = model.model_fields.get(name)
            if info is not None and typing.get_origin(info.annotation) is typing.Literal:
                if value.get(name) in typing.get_args(info.annotation):
                    return model
    return None


def fields_at(root: type[BaseModel], path: Path, data: Any) -> list[str]:
    """The keys allowed at ``path`` (for did-you-mean), following the raw data through unions."""
    annotation: Any = root
    node = data
    for part in path:
        if isinstance(part, int):
            annotation = _list_item(annotation)
        else:
            model = _pick(_models_in(annotation), node)
            if model is None or part not in model.model_fields:
                return []
            annotation = model.model_fields[part].annotation
        node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
    model = _pick(_models_in(annotation), node)
    return list(model.model_fields) if model else []


def _has(node: dict | list, part: str | int) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and part < len(node)


def _map_error(error: dict, root: type[BaseModel], data: Any, locate: _Locator) -> Diagnostic:
    kind = error["type"]
    ctx = error.get("ctx", {})
    path = _strip_tags(error["loc"], data)
    if kind == "extra_forbidden":
        key = path[-1]
        hint = did_you_mean(str(key), fields_at(root, path[:-1], data))
        return locate(path, f"unknown key '{key}'{hint}", prefer_key=True)
    if kind == "missing":
        return locate(path, f"missing required key '{path[-1]}'", prefer_key=True)
    if kind == "union_tag_invalid":
        key = ctx.get("discriminator", "").strip("'")
        tags = [t.strip().strip("'") for t in ctx.get("expected_tags", "").split(",")]
        hint = did_you_mean(str(ctx.get("tag")), tags)
        return locate(path + (key,), f"unknown {key} '{ctx.get('tag')}'{hint}; allowed: {', '.join(tags)}")
    if kind == "union_tag_not_found":
        key = ctx.get("discriminator", "").strip("'")
        return locate(path + (key,), f"missing required key '{key}'", prefer_key=True)
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        allowed = [part.strip().strip("'") for part in expected.replace(" or ", ", ").split(",")]
        hint = did_you_mean(str(error.get("input")), allowed)
        return locate(path, f"'{error.get('input')}' is not allowed{hint}; allowed: {', '.join(allowed)}")
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return locate(path, message[0].lower() + message[1:] if message else kind)


# ---------------------------------------------------------------- the pipeline


def _top_level_keys(registry: Registry) -> list[str]:
    return [*RecipeBase.model_fields, *(["callbacks"] if registry.callbacks else [])]


def _misspelt(keys: list[str], wanted: str, known: list[str]) -> list[str]:
    """The keys of ``keys`` that are not in ``known`` but look like ``wanted``."""
    return [key for key in keys if key not in known and did_you_mean(key, [wanted])]


def _dispatch(data: dict, registry: Registry, locate: _Locator) -> str | list[Diagnostic]:
    """The modality a recipe asks for, or why it can't be found (a misspelt key at its own line)."""
    model = data.get("model")
    names = sorted(registry.modalities)
    if not isinstance(model, dict):
        if model is not None:
            return [locate(("model",), "must be a mapping with at least 'modality' and 'base'")]
        known = _top_level_keys(registry)
        unknown = [key for key in data if key not in known]
        found = [locate((key,), f"unknown key '{key}'{did_you_mean(key, known)}", prefer_key=True) for key in unknown]
        if not _misspelt(unknown, "model", known):
            found.append(locate(("model",), "missing required section 'model'", prefer_key=True))
        return found
    modality = model.get("modality")
    if modality is None:
        misspelt = _misspelt(list(model), "modality", list(ModelSection.model_fields))
        if misspelt:
            return [locate(("model", key), f"unknown key '{key}' (did you mean 'modality'?)", prefer_key=True) for key in misspelt]
        return [locate(("model", "modality"), f"missing required key 'modality'; allowed: {', '.join(names)}", prefer_key=True)]
    if not isinstance(modality, str):
        return [locate(("model", "modality"), f"must be the name of a modality; allowed: {', '.join(names)}")]
    if modality not in registry.modalities:
        failed = [f"plugin '{p.name}' failed to load ({p.error})" for p in registry.failed_plugins()]
        note = f"; note: {'; '.join(failed)}" if failed else ""
        hint = did_you_mean(str(modality), names)
        return [locate(("model", "modality"), f"unknown modality '{modality}'{hint}; allowed: {', '.join(names)}{note}")]
    return str(modality)


def unread_keys(registry: Registry, modality: str, data_format: Any) -> dict[str, str]:
    """Shared keys the modality (or its data format) does not read -> the message a recipe that writes one gets."""
    record = registry.modalities[modality]
    unread = {key: f"not read by the '{modality}' modality" + (f": {why}" if why else "") for key, why in record.ignores.items()}
    fmt = registry.formats_for(modality).get(data_format) if isinstance(data_format, str) else None
    if fmt is not None:
        unread.update({key: f"not read by data format '{fmt.name}'" + (f": {why}" if why else "") for key, why in fmt.ignores.items()})
    if not registry.augmentations_for(modality):
        unread["data.augment"] = f"no augmentation is registered for the '{modality}' modality"
    return unread


def resolved_data(recipe: RecipeBase, registry: Registry | None = None) -> dict[str, Any]:
    """The recipe as data with every default filled in, less the keys its modality does not read: what
    recipe.resolved.yaml holds, and a recipe that validates again to the very same recipe."""
    registry = registry or get_registry()
    data = recipe.model_dump(mode="json")
    for key in unread_keys(registry, recipe.model.modality, recipe.data.format):
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> values; mappings and lists of mappings (``data.augment.0.name``) are walked, lists
    of scalars compared whole, an empty mapping or list is a value of its own."""
    if isinstance(data, dict) and data:
        items: Iterator[tuple[str, Any]] = ((str(k), v) for k, v in data.items())
    elif isinstance(data, list) and data and any(isinstance(item, dict) for item in data):
        items = ((str(i), v) for i, v in enumerate(data))
    else:
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else key))
    return flat


def _written(data: Any, dotted_key: str) -> bool:
    node = data
    for part in dotted_key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node not in (None, [], {})


def resolve_defaults(recipe: RecipeBase, registry: Registry, source: str) -> RecipeBase:
    """Fill the defaults that depend on other settings, so the resolved recipe says everything."""
    recipe = recipe.model_copy(deep=True)
    training, output, freeze = recipe.training, recipe.output, recipe.freeze
    if training.epochs is None and training.max_steps is None:
        training.epochs = 1
    if output.save is None:
        output.save = "adapter" if freeze.strategy in ("lora", "qlora") else "full"
    if output.dir is None:
        output.dir = f"runs/{recipe.name or FsPath(source).stem}"
    if recipe.name is None:
        recipe.name = FsPath(source).stem
    if freeze.strategy in ("lora", "qlora") and freeze.lora is None:
        freeze.lora = LoraSettings()
    if freeze.strategy == "qlora" and recipe.model.quantization is None:
        recipe.model.quantization = Quantization()
    if recipe.evaluation.metrics is None:
        recipe.evaluation.metrics = list(registry.modalities[recipe.model.modality].default_metrics)
    return recipe


def validate_data(
    data: Any,
    *,
    source: str,
    loaded: LoadedYaml | None = None,
    overrides: Sequence[str] = (),
    registry: Registry | None = None,
) -> ValidationResult:
    """Validate already-parsed recipe data (``loaded`` carries its positions, if any)."""
    registry = registry or get_registry()
    loaded = loaded or LoadedYaml(data=data)
    result = ValidationResult(source=source, recipe=None)
    parsed: list[Override] = []
    for argument in overrides:
        try:
            parsed.append(parse_override(argument))
        except OverrideError as error:
            result.diagnostics.append(Diagnostic(f"--set {argument}", "", str(error)))
    locate = _Locator(source, loaded, parsed)
    result.locate = locate
    result.diagnostics.extend(
        Diagnostic(source, dotted(p.path), p.message, p.mark.line, p.mark.col) for p in loaded.problems
    )
    if not isinstance(data, dict) or result.diagnostics:
        return result
    for override in parsed:
        try:
            apply_overrides(data, [override])
        except OverrideError as error:
            result.diagnostics.append(Diagnostic(f"--set {error.argument}", "", str(error)))
    result.written = copy.deepcopy(data)
    if registry.conflicts:
        result.diagnostics.extend(Diagnostic(source, "", f"plugin conflict: {c}") for c in registry.conflicts)
    if result.diagnostics:
        return result

    modality = _dispatch(data, registry, locate)
    if not isinstance(modality, str):
        result.diagnostics.extend(modality)
        return result
    model_class = recipe_class(modality, registry)
    section = data.get("data")
    data_format = section.get("format") if isinstance(section, dict) else None
    for key, message in unread_keys(registry, modality, data_format).items():
        if _written(data, key):
            result.diagnostics.append(locate(tuple(key.split(".")), f"{message}; remove it", prefer_key=True))
    try:
        recipe = model_class.model_validate(data)
    except ValidationError as error:
        result.diagnostics.extend(_map_error(e, model_class, data, locate) for e in error.errors())
    if result.diagnostics:
        result.diagnostics.sort(key=lambda d: (d.line or 0, d.col or 0))
        return result

    checks = CORE_CHECKS + registry.modalities[modality].checks
    for check in checks:
        result.diagnostics.extend(locate(p.path, p.message) for p in check(recipe))
    strategies = registry.modalities[modality].strategies
    result.diagnostics.extend(locate(p.path, p.message) for p in check_distribution(recipe, strategies))
    if not result.diagnostics:
        result.recipe = resolve_defaults(recipe, registry, source)
    return result


def validate_text(text: str, *, source: str, overrides: Sequence[str] = (), registry: Registry | None = None) -> ValidationResult:
    loaded = load_yaml(text)
    return validate_data(loaded.data, source=source, loaded=loaded, overrides=overrides, registry=registry)


def validate_file(path: str | FsPath, *, overrides: Sequence[str] = (), registry: Registry | None = None) -> ValidationResult:
    """Validate one recipe file; never raises for bad input. A file over MAX_RECIPE_BYTES is refused
    unread (and the read stops there: a file that grew, or a device, never fills the memory)."""
    path = FsPath(path)
    text = ""
    try:
        size = path.stat().st_size
        if size <= MAX_RECIPE_BYTES:
            with path.open(encoding="utf-8") as file:
                text = file.read(MAX_RECIPE_BYTES + 1)  # a file that grew since, or a device, stops here
    except FileNotFoundError:
        return ValidationResult(str(path), None, [Diagnostic(str(path), "", "no such file")])
    except (OSError, UnicodeDecodeError) as error:
        return ValidationResult(str(path), None, [Diagnostic(str(path), "", f"cannot read the file: {error}")])
    if size > MAX_RECIPE_BYTES or len(text) > MAX_RECIPE_BYTES:
        shown = f"{size:,} bytes" if size > MAX_RECIPE_BYTES else "over 1 MiB"
        message = f"the file is {shown}; a recipe is at most 1 MiB"
        return ValidationResult(str(path), None, [Diagnostic(str(path), "", message, 1, 1)])
    result = validate_text(text, source=str(path), overrides=overrides, registry=registry)
    result.base_dir = path.parent.resolve()
    return result
