"""The classifier's architecture: a torchvision builder, its head for the recipe's labels, its layer stacks.

One description serves the run (:meth:`Architecture.build`), the plan (the same call under
``torch.device("meta")``), the saved model's ``torchvision.json`` and the model card's snippet, so the model
a user rebuilds from the card is the one that trained. Shared by the task and the planner, which never
import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torchvision
from torch import nn

from ftrecipe.plugin import ModelAnatomy
from ftrecipe_vision.saving import WEIGHTS_FILE, card_snippet

RESNET_FAMILY = ("resnet", "resnext", "wide_resnet")
BASIC_BLOCK = ("resnet18", "resnet34")
SMOKE_IMAGE_SIZE = 64
"""The largest image side of a --smoke run."""
PRETRAINED_KWARGS = {
    "googlenet": {"transform_input": True, "aux_logits": True, "init_weights": False},
    "inception_v3": {"transform_input": True, "aux_logits": True, "init_weights": False},
}
"""What torchvision's builder sets when it is handed weights; built without them (the plugin loads the file
itself, from the cache or a local path), so the same is set here."""
STAGE_CONTAINERS = ("features", "layers", "blocks", "encoder.layers", "trunk_output")
"""Where the other families keep their stages (the main stack of the freeze grammar), in the order tried."""


def is_resnet(builder: str) -> bool:
    return builder.startswith(RESNET_FAMILY)


@dataclass(frozen=True)
class Architecture:
    """How to build the classifier: ``builder``'s architecture (or a ResNet of ``blocks`` blocks per stage)
    with ``outputs`` classes, and the recipe's head on top (``append``: a layer from those outputs to ``classes``)."""

    builder: str
    outputs: int
    """Outputs of the builder's own last layer (the weights' classes, or the labels' count)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Builder keyword arguments besides ``num_classes`` (``model.config``, what weights imply)."""
    blocks: int | None = None
    """Blocks per stage of a shortened ResNet (torchvision's ``ResNet`` class), for --smoke and small demos."""
    append: int | None = None
    """``head.mode: append``: the number of classes of the layer added after the last one."""

    def body(self) -> nn.Module:
        if self.blocks:
            from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

            block = BasicBlock if self.builder in BASIC_BLOCK else Bottleneck
            return ResNet(block, [self.blocks] * 4, num_classes=self.outputs, **self.kwargs)
        return torchvision.models.get_model(self.builder, weights=None, num_classes=self.outputs, **self.kwargs)

    def build(self) -> nn.Module:
        """The model with random weights (on the current default device: ``meta`` for the plan)."""
        model = self.body()
        if self.append:
            attach_appended(model, head_path(model), self.append)
        return model

    @property
    def classes(self) -> int:
        return self.append or self.outputs

    def constructor(self) -> dict[str, Any]:
        """``torchvision.json``'s description: builder and keyword arguments, and how the model differs from it."""
        described: dict[str, Any] = {}
        if self.blocks:
            described["resnet_blocks"] = [self.blocks] * 4
        if self.append:
            described["appended_head"] = {"after": self.outputs, "classes": self.append}
        return described

    def snippet(self, path: str, directory: str = "model") -> str:
        """Python that rebuilds the saved model with torchvision's constructor and loads its weights."""
        kwargs = {"num_classes": self.outputs, **self.kwargs}
        if not self.blocks and not self.append:
            return card_snippet(self.builder, kwargs, directory=directory)
        arguments = "".join(f", {key}={value!r}" for key, value in kwargs.items())
        lines = ["import torch", "import torchvision", "from safetensors.torch import load_file"]
        if self.blocks:
            block = "BasicBlock" if self.builder in BASIC_BLOCK else "Bottleneck"
            lines += [f"from torchvision.models.resnet import {block}, ResNet", "",
                      f"model = ResNet({block}, {[self.blocks] * 4}{arguments})"]
        else:
            lines += ["", f"model = torchvision.models.get_model({self.builder!r}, weights=None{arguments})"]
        if self.append:
            target = python_path(path)
            lines.append(f"{target} = torch.nn.Sequential({target}, torch.nn.ReLU(), torch.nn.Linear({self.outputs}, {self.append}))")
        lines += [f"model.load_state_dict(load_file({directory + '/' + WEIGHTS_FILE!r}))", "model.eval()", ""]
        return "\n".join(lines)


def python_path(path: str) -> str:
    """``classifier.1`` -> ``model.classifier[1]``: a module's name as the expression that reaches it."""
    return "model" + "".join(f"[{part}]" if part.isdigit() else f".{part}" for part in path.split("."))


def head_path(model: nn.Module) -> str:
    """The name of the classifier's last layer: the last ``nn.Linear`` (``fc``, ``classifier.1``, ``heads.head``),
    or SqueezeNet's last convolution (``classifier.1``)."""
    linear = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if linear:
        return linear[-1]
    convolutions = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    return convolutions[-1]


def replace_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module) if not name.isdigit() else parent.__setitem__(int(name), module)


def new_last_layer(old: nn.Module, classes: int) -> nn.Module:
    """A freshly initialised layer of ``old``'s kind and inputs with ``classes`` outputs."""
    if isinstance(old, nn.Linear):
        return nn.Linear(old.in_features, classes, device=old.weight.device)
    return nn.Conv2d(old.in_channels, classes, kernel_size=old.kernel_size, device=old.weight.device)


def replace_head(model: nn.Module, classes: int) -> str:
    """``head.mode: replace``: the last layer rebuilt for ``classes`` outputs; returns its name."""
    path = head_path(model)
    replace_module(model, path, new_last_layer(model.get_submodule(path), classes))
    return path


def attach_appended(model: nn.Module, path: str, classes: int) -> None:
    """``head.mode: append``: the last layer, a ReLU, and a new layer from its outputs to ``classes``."""
    old = model.get_submodule(path)
    outputs = old.out_features if isinstance(old, nn.Linear) else old.out_channels
    replace_module(model, path, nn.Sequential(old, nn.ReLU(), nn.Linear(outputs, classes, device=old.weight.device)))


def anatomy(model: nn.Module, head: str) -> ModelAnatomy:
    """Stacks for the freeze grammar: a ResNet's stages ``layer1``..``layer4`` are the main stack ``layers`` (and each is
    a stack of its blocks: ``freeze_layers: {stack: layer3, first: 2}``); other families' stages are the children of
    their ``features`` (``layers``, ``blocks``, ``encoder.layers``, ``trunk_output``). The head is the last layer."""
    names = dict(model.named_modules())
    stacks: dict[str, list[str]] = {}
    stages = [f"layer{i}" for i in range(1, 5) if f"layer{i}" in names]
    if len(stages) == 4:
        stacks["layers"] = stages
        for stage in stages:
            stacks[stage] = [f"{stage}.{name}" for name, _ in names[stage].named_children()]
    else:
        for container in STAGE_CONTAINERS:
            if container in names and len(list(names[container].children())) > 1:
                stacks[container.split(".")[-1]] = [f"{container}.{name}" for name, _ in names[container].named_children()]
                break
    main = "layers" if "layers" in stacks else next(iter(stacks), None)
    return ModelAnatomy(stacks=stacks, main_stack=main, head=[head])


def logits_of(output: Any) -> torch.Tensor:
    """The main logits of a forward pass (GoogLeNet and Inception add auxiliary ones while training)."""
    return output.logits if hasattr(output, "logits") else output
