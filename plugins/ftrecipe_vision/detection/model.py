"""The run's Faster R-CNN: built, loaded with pre-trained weights, its box predictor replaced, its anatomy named.

With pre-trained weights the model is built for the weights' own class count (91 for COCO), loaded
strictly, and only then given a new ``FastRCNNPredictor`` for the recipe's classes plus the background,
as torchvision's fine-tuning tutorial does. The ResNet body's BatchNorm layers become
``FrozenBatchNorm2d`` first: torchvision's v1 builder does exactly that whenever it loads weights
(detection batches of a few images cannot estimate batch statistics); v2's builder keeps ``BatchNorm2d``,
and is given the same treatment here so that a frozen stage stays frozen in train mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ftrecipe.plugin import ModelAnatomy, RecipeRuntimeError
from ftrecipe_vision.detection.architecture import Architecture

BODY_STAGES = ("conv1", "layer1", "layer2", "layer3", "layer4")
"""The ResNet body's stages, input side first: torchvision's ``trainable_backbone_layers`` counts them from the top."""
HEAD = ("backbone.fpn", "rpn", "roi_heads")
"""What trains under ``transfer`` whatever ``trainable_backbone_layers`` says: the FPN, the RPN, the box heads."""
PREDICTOR_CLASSES = "roi_heads.box_predictor.cls_score.weight"


def architecture(recipe, classes: Sequence[str], *, smoke: bool) -> Architecture:
    model = recipe.model
    return Architecture.of(model.base, model.config, len(classes) + 1, smoke=smoke)


def pretrained(recipe, *, smoke: bool) -> bool:
    return recipe.model.init == "pretrained" and not smoke


def freeze_body_norms(model: torch.nn.Module) -> int:
    """Every ``BatchNorm2d`` of the ResNet body replaced by torchvision's ``FrozenBatchNorm2d`` (its values kept);
    returns how many. Meta tensors stay on meta."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    body, count = model.backbone.body, 0
    for name, module in list(body.named_modules()):
        if type(module) is torch.nn.BatchNorm2d:
            parent_name, _, child = name.rpartition(".")
            parent = body.get_submodule(parent_name) if parent_name else body
            frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps).to(module.weight.device)
            for buffer in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, buffer).copy_(getattr(module, buffer).detach())
            setattr(parent, child, frozen)
            count += 1
    return count


def replace_predictor(model: torch.nn.Module, num_classes: int) -> None:
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(features, num_classes)


def build(recipe, classes: Sequence[str], *, smoke: bool, base_dir: Path, log=print) -> torch.nn.Module:
    """The model ``build_model`` returns: on the CPU, head replaced, before freezing."""
    arch = architecture(recipe, classes, smoke=smoke)
    if not pretrained(recipe, smoke=smoke):
        return arch.build()
    from ftrecipe_vision.pretrained import load_weights

    spec = recipe.model.weights or "DEFAULT"
    state, meta = load_weights(spec, builder=recipe.model.base, base_dir=base_dir)
    source = state.get(PREDICTOR_CLASSES)
    source_classes = int(source.shape[0]) if source is not None else arch.num_classes
    model = Architecture(arch.base, source_classes, arch.kwargs).build()
    freeze_body_norms(model)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise RecipeRuntimeError(("model", "weights"), f"'{spec}' does not fit {recipe.model.base}: {str(error)[:600]}") from error
    replace_predictor(model, arch.num_classes)
    log(f"weights {meta.get('name', spec)} loaded; box predictor replaced for {len(classes)} classes + background "
        f"(was {source_classes - 1} + background)")
    return model


def plan_model(recipe, classes: Sequence[str], *, smoke: bool) -> torch.nn.Module:
    """:func:`build` on the meta device, from the architecture alone (nothing read, nothing downloaded)."""
    arch = architecture(recipe, classes, smoke=smoke)
    with torch.device("meta"):
        model = arch.build()
        if pretrained(recipe, smoke=smoke):
            freeze_body_norms(model)
    return model


def anatomy(model: torch.nn.Module) -> ModelAnatomy:
    """The ResNet body's stages as the stack ``body``; the FPN, RPN and box heads as the head."""
    stages = [f"backbone.body.{stage}" for stage in BODY_STAGES]
    missing = [name for name in stages if not _has(model, name)]
    if missing:
        raise RecipeRuntimeError(("model", "base"), f"not a ResNet-FPN Faster R-CNN: no {', '.join(missing)}")
    return ModelAnatomy(stacks={"body": stages}, main_stack="body", head=list(HEAD))


def _has(model: torch.nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True
