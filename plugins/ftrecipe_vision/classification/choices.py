"""What a recipe asks for, resolved the same way for the run and for `ftrecipe plan`: the head's labels, the
architecture, the training size and the preprocessing. (The task and its planner both use this module and
never import each other.)"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe_vision.classification.architecture import PRETRAINED_KWARGS, SMOKE_IMAGE_SIZE, Architecture, is_resnet
from ftrecipe_vision.classification.dataset import Preprocessing
from ftrecipe_vision.pretrained import entry_name, is_weight_file
from ftrecipe_vision.weights_table import builders

IMAGENET_CLASSES = 1000
"""The outputs of a builder's own head when nothing says otherwise (torchvision's default ``num_classes``)."""


def from_config(recipe: Any, smoke: bool) -> bool:
    """The model starts random: ``init: scratch``, or ``--smoke`` (no weights needed)."""
    return smoke or recipe.model.init == "scratch"


def image_size(recipe: Any, smoke: bool) -> int:
    size = recipe.model.image_size
    return min(size, SMOKE_IMAGE_SIZE) if smoke else size


def weights_entry(recipe: Any) -> Any | None:
    """The torchvision weights entry ``model.weights`` names (``ResNet50_Weights.IMAGENET1K_V2``), or None for a
    file or a model from scratch. Reading the entry's description downloads nothing."""
    spec = recipe.model.weights_spec()
    if spec is None or is_weight_file(spec):
        return None
    name = entry_name(recipe.model.base, spec)
    if name is None:
        raise RecipeRuntimeError(("model", "weights"), f"{recipe.model.base} has no weights '{spec}' in torchvision")
    from torchvision.models import get_weight

    return get_weight(f"{builders()[recipe.model.base]['enum']}.{name}")


def categories(recipe: Any) -> list[str] | None:
    """The classes of the weights' own head (ImageNet's), where the weights are a torchvision entry."""
    entry = weights_entry(recipe)
    return list(entry.meta["categories"]) if entry is not None and "categories" in entry.meta else None


def preprocessing(recipe: Any, smoke: bool) -> Preprocessing:
    """Resize, crop, mean and std: the weights entry's (ImageNet's) at the recipe's training size."""
    entry = weights_entry(recipe)
    meta: dict[str, Any] = {}
    if entry is not None:
        transforms = entry.transforms()
        meta = {name: getattr(transforms, name) for name in ("mean", "std", "resize_size", "crop_size") if hasattr(transforms, name)}
    return Preprocessing.of(image_size(recipe, smoke), meta)


def head_labels(recipe: Any, data_classes: Sequence[str] | None) -> list[str]:
    """The classes the model outputs, in order: ``keep``: the weights' own; else ``head.labels``, or the data's."""
    head = recipe.head
    if head.mode == "keep":
        names = categories(recipe)
        if names is None:
            raise RecipeRuntimeError(("head", "mode"), "keep needs a torchvision weights entry, whose classes the head keeps")
        return names
    if head.labels:
        return list(head.labels)
    if data_classes is None:
        if head.num_labels:
            return [f"LABEL_{i}" for i in range(head.num_labels)]
        raise RecipeRuntimeError(("head", "labels"), "the data cannot be read here: name the classes in head.labels")
    if head.num_labels and len(data_classes) != head.num_labels:
        raise RecipeRuntimeError(("head", "num_labels"), f"the data has {len(data_classes)} classes: {', '.join(data_classes)}")
    return list(data_classes)


def architecture(recipe: Any, labels: Sequence[str], *, smoke: bool, outputs: int | None = None) -> Architecture:
    """The trained model for ``labels`` (what is saved, and what the plan counts). ``outputs``: the loaded
    weights' own head size, which ``append`` builds on (None: the weights entry's class count, else 1000)."""
    model, mode = recipe.model, recipe.head.mode
    kwargs: dict[str, Any] = {} if smoke else {key: value for key, value in model.config.items() if key != "blocks"}
    blocks = model.config.get("blocks") if not smoke else (1 if is_resnet(model.base) else None)
    if model.base.startswith("vit_"):
        kwargs["image_size"] = image_size(recipe, smoke)
    if not from_config(recipe, smoke):
        kwargs.update(PRETRAINED_KWARGS.get(model.base, {}))
    elif model.base in PRETRAINED_KWARGS:
        kwargs.setdefault("init_weights", True)  # (torchvision warns when it is not said)
    if mode != "append":  # replace: a last layer for the labels; keep: the labels are the weights' classes
        return Architecture(model.base, len(labels), kwargs, blocks=int(blocks) if blocks else None)
    if outputs is None:
        known = categories(recipe) if model.init == "pretrained" else None
        outputs = len(known) if known else IMAGENET_CLASSES
    return Architecture(model.base, outputs, kwargs, blocks=int(blocks) if blocks else None, append=len(labels))


def weights_file(recipe: Any, base_dir: Path) -> Path | None:
    spec = recipe.model.weights_spec()
    return (base_dir / spec).expanduser() if spec is not None and is_weight_file(spec) else None
