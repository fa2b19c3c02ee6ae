"""Which Faster R-CNN a recipe builds: torchvision's builder with ``model.config`` as its keyword arguments,
or (``init: scratch``) a smaller ResNet-FPN Faster R-CNN assembled from torchvision's own parts.

Torch-free at import (``config_problems`` runs on every `ftrecipe validate`); the builders import torchvision.
The same :class:`Architecture` builds the run's model, the plan's meta model and the model card's snippet,
so the three cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ftrecipe.plugin import Problem

INT_KEYS = ("min_size", "max_size", "rpn_pre_nms_top_n_train", "rpn_pre_nms_top_n_test", "rpn_post_nms_top_n_train",
            "rpn_post_nms_top_n_test", "rpn_batch_size_per_image", "box_detections_per_img", "box_batch_size_per_image")
FLOAT_KEYS = ("rpn_nms_thresh", "rpn_fg_iou_thresh", "rpn_bg_iou_thresh", "rpn_positive_fraction", "rpn_score_thresh",
              "box_score_thresh", "box_nms_thresh", "box_fg_iou_thresh", "box_bg_iou_thresh", "box_positive_fraction")
TORCHVISION_KEYS = INT_KEYS + FLOAT_KEYS
"""``FasterRCNN`` keyword arguments ``model.config`` may set (any base): they go to torchvision's builder as written."""
RESNETS = {"resnet10": ("BasicBlock", [1, 1, 1, 1]), "resnet18": ("BasicBlock", [2, 2, 2, 2]),
           "resnet34": ("BasicBlock", [3, 4, 6, 3]), "resnet50": ("Bottleneck", [3, 4, 6, 3])}
SMALL_KEYS = ("backbone", "fpn_channels", "representation_size")
"""Keys that make a smaller model of the v1 family (``init: scratch`` only): the ResNet, the FPN's width, the box head's width."""
SMALL_BASE = "fasterrcnn_resnet50_fpn"
SMOKE = {"backbone": "resnet10", "fpn_channels": 32, "representation_size": 64, "min_size": 64, "max_size": 96,
         "rpn_pre_nms_top_n_train": 100, "rpn_post_nms_top_n_train": 50, "rpn_pre_nms_top_n_test": 100,
         "rpn_post_nms_top_n_test": 50, "box_batch_size_per_image": 32, "rpn_batch_size_per_image": 64}
"""--smoke: a tiny randomly initialised Faster R-CNN of the same family (a ResNet-10 FPN at 64 px)."""
DEFAULT_SIZES = {"min_size": 800, "max_size": 1333, "box_batch_size_per_image": 512}
"""torchvision's defaults of the keys the plan reads."""
FPN_LEVELS = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}


def config_problems(base: str, init: str, config: Mapping[str, Any]) -> Iterator[Problem]:
    """What is wrong with ``model.config`` for this base: unknown keys, wrong types, size keys with weights."""
    key = ("model", "config")
    for name, value in config.items():
        if name in INT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                yield Problem(key + (name,), f"{name} must be a positive whole number")
        elif name in FLOAT_KEYS:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                yield Problem(key + (name,), f"{name} must be a number from 0 to 1")
        elif name in SMALL_KEYS:
            if init != "scratch" or base != SMALL_BASE:
                yield Problem(key + (name,), f"{name} changes the architecture, so no pre-trained weights fit it: "
                                             f"it needs init: scratch and base: {SMALL_BASE}")
            elif name == "backbone" and value not in RESNETS:
                yield Problem(key + (name,), f"backbone must be one of {', '.join(RESNETS)}")
            elif name != "backbone" and (isinstance(value, bool) or not isinstance(value, int) or value < 8):
                yield Problem(key + (name,), f"{name} must be a whole number of at least 8")
        else:
            yield Problem(key + (name,), f"unknown key '{name}': torchvision's FasterRCNN takes {', '.join(TORCHVISION_KEYS)}; "
                                         f"with init: scratch also {', '.join(SMALL_KEYS)}")
    if "min_size" in config and "max_size" in config and config["max_size"] < config["min_size"]:
        yield Problem(key + ("max_size",), "max_size must be at least min_size")


@dataclass(frozen=True)
class Architecture:
    """A Faster R-CNN, as data: ``base`` (torchvision's builder), its keyword arguments and, for the small
    family, the ResNet and widths. ``num_classes`` counts the background, as torchvision does."""

    base: str
    num_classes: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    small: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, base: str, config: Mapping[str, Any], num_classes: int, *, smoke: bool = False) -> Architecture:
        merged = dict(config)
        if smoke:  # the recipe's own settings, made no larger than the tiny model's
            merged.update({k: (min(merged[k], v) if k in INT_KEYS and k in merged else v) for k, v in SMOKE.items()})
            merged["max_size"] = max(merged["max_size"], merged["min_size"])
        small = {k: merged.pop(k) for k in SMALL_KEYS if k in merged}
        if small:
            small = {"backbone": "resnet50", "fpn_channels": 256, "representation_size": 1024, **small}
        return cls(SMALL_BASE if small else base, num_classes, merged, small)

    def setting(self, name: str) -> Any:
        return self.kwargs.get(name, DEFAULT_SIZES.get(name))

    def build(self) -> Any:
        """The model, randomly initialised (on the current default device: meta for the plan)."""
        if not self.small:
            import torchvision

            return torchvision.models.get_model(self.base, weights=None, weights_backbone=None, num_classes=self.num_classes,
                                                **self.kwargs)
        from torchvision.models import resnet
        from torchvision.models.detection import FasterRCNN
        from torchvision.models.detection.backbone_utils import BackboneWithFPN
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

        block_name, layers = RESNETS[self.small["backbone"]]
        block = getattr(resnet, block_name)
        widths = [64 * block.expansion * 2**i for i in range(4)]
        channels, width = self.small["fpn_channels"], self.small["representation_size"]
        backbone = BackboneWithFPN(resnet.ResNet(block, layers), dict(FPN_LEVELS), widths, channels)
        return FasterRCNN(backbone, box_head=TwoMLPHead(channels * 7 * 7, width),
                          box_predictor=FastRCNNPredictor(width, self.num_classes), **self.kwargs)

    def snippet(self, directory: str = "model") -> str:
        """Python that rebuilds this model with torchvision and loads the saved weights (the model card's)."""
        from ftrecipe_vision.saving import WEIGHTS_FILE, card_snippet

        if not self.small:
            return card_snippet(self.base, self.constructor_kwargs(), directory=directory)
        block_name, layers = RESNETS[self.small["backbone"]]
        channels, width = self.small["fpn_channels"], self.small["representation_size"]
        expansion = 4 if block_name == "Bottleneck" else 1
        widths = [64 * expansion * 2**i for i in range(4)]
        arguments = "".join(f", {key}={value!r}" for key, value in self.kwargs.items())
        return (
            "from safetensors.torch import load_file\n"
            "from torchvision.models.detection import FasterRCNN\n"
            "from torchvision.models.detection.backbone_utils import BackboneWithFPN\n"
            "from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead\n"
            f"from torchvision.models.resnet import {block_name}, ResNet\n\n"
            f"body = ResNet({block_name}, {layers!r})  # {self.small['backbone']}\n"
            f"backbone = BackboneWithFPN(body, {FPN_LEVELS!r}, {widths!r}, {channels})\n"
            f"model = FasterRCNN(backbone, box_head=TwoMLPHead({channels} * 7 * 7, {width}),\n"
            f"                   box_predictor=FastRCNNPredictor({width}, {self.num_classes}){arguments})\n"
            f"model.load_state_dict(load_file({directory + '/' + WEIGHTS_FILE!r}))\n"
            "model.eval()\n"
        )

    def constructor_kwargs(self) -> dict[str, Any]:
        """The builder's keyword arguments besides ``weights`` (what ``torchvision.json`` records)."""
        return {"weights_backbone": None, "num_classes": self.num_classes, **self.kwargs, **self.small}

    def describe(self) -> str:
        if not self.small:
            return f"{self.base} ({self.num_classes - 1} classes + background)"
        return (f"Faster R-CNN, {self.small['backbone']} FPN ({self.small['fpn_channels']} channels), box head "
                f"{self.small['representation_size']} wide ({self.num_classes - 1} classes + background)")
