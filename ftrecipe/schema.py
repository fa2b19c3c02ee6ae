"""Assembles the recipe models from the core sections and what the plugins contribute.

Each modality gets its own recipe class: its ``model`` section, the shared sections it extends, a
discriminated union of the dataset formats that serve it (on ``data.format``), of its augmentations
(on ``data.augment[].name``), and ``Literal`` lists of its metrics and of the installed callbacks. The JSON Schema is the union of
those classes, discriminated on ``model.modality``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, create_model

from ftrecipe.registry import EXTENSIBLE_SECTIONS, Registry, get_registry
from ftrecipe.sections import AugmentationSection, DataSection, RecipeBase

SCHEMA_ID = "https://ftrecipe.dev/schemas/recipe.schema.json"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))


def _union(members: list[type], discriminator: str) -> Any:
    if len(members) == 1:
        return members[0]
    return Annotated[Union[tuple(members)], Field(discriminator=discriminator)]  # noqa: UP007


def _literal_list(names: list[str]) -> Any:
    return list[Literal[tuple(sorted(names))]] if names else list[str]  # type: ignore[misc]


def _build_recipe_class(registry: Registry, modality: str) -> type[RecipeBase]:
    record = registry.modalities[modality]
    prefix = _camel(modality)

    augmentations = [a.section for a in registry.augmentations_for(modality).values()]
    augment_item = _union(augmentations, "name") if augmentations else AugmentationSection
    data_members = []
    for fmt in registry.formats_for(modality).values():
        data_members.append(
            create_model(
                f"{prefix}{_camel(fmt.name)}Data",
                __base__=fmt.section,
                __doc__=fmt.section.__doc__ or fmt.description,
                augment=(list[augment_item], Field(default_factory=list, description=DataSection.model_fields["augment"].description)),
            )
        )
    data_type = _union(data_members, "format") if data_members else DataSection

    shared = {name: RecipeBase.model_fields[name].annotation for name in EXTENSIBLE_SECTIONS}
    shared.update(record.sections)
    base_evaluation = shared["evaluation"]
    shared["evaluation"] = create_model(
        f"{prefix}Evaluation",
        __base__=base_evaluation,
        __doc__=base_evaluation.__doc__,
        metrics=(
            _literal_list(list(registry.metrics_for(modality))) | None,
            Field(default=None, description=base_evaluation.model_fields["metrics"].description),
        ),
    )
    return create_model(
        f"{prefix}Recipe",
        __base__=RecipeBase,
        __doc__=f"A recipe for the '{modality}' modality. {record.description}".strip(),
        model=(record.section, ...),
        data=(data_type, ...),
        **{name: (section, Field(default_factory=section)) for name, section in shared.items()},
        callbacks=(
            _literal_list(list(registry.callbacks)),
            Field(default_factory=list, description="Runner callbacks to switch on (see `ftrecipe plugins`)."),
        ),
    )


def recipe_class(modality: str, registry: Registry | None = None) -> type[RecipeBase]:
    """The pydantic model of a recipe for ``modality`` (built once per registry)."""
    registry = registry or get_registry()
    if modality not in registry.recipe_classes:
        registry.recipe_classes[modality] = _build_recipe_class(registry, modality)
    return registry.recipe_classes[modality]


def _modality_of(value: Any) -> str | None:
    if isinstance(value, dict):
        model = value.get("model")
        return model.get("modality") if isinstance(model, dict) else None
    model = getattr(value, "model", None)
    return getattr(model, "modality", None)


def json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The JSON Schema of every recipe the installed plugins accept."""
    registry = registry or get_registry()
    members = [Annotated[recipe_class(name, registry), Tag(name)] for name in sorted(registry.modalities)]
    if not members:
        schema: dict[str, Any] = RecipeBase.model_json_schema()
    else:
        union = Annotated[Union[tuple(members)], Discriminator(_modality_of)]  # noqa: UP007
        schema = TypeAdapter(union).json_schema()
    return {
        **schema,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ftrecipe recipe",
        "description": "A declarative fine-tuning recipe: see `ftrecipe plugins` for the modalities installed.",
    }


def json_schema_text(registry: Registry | None = None) -> str:
    return json.dumps(json_schema(registry), indent=2, sort_keys=True) + "\n"
