"""Seeded torchvision.transforms.v2 augmentations for image classification, and the chain that applies them.

Each augmentation is ``fn(image, size, rng, **params) -> image``: a PIL picture in, a PIL picture out,
``size`` the training resolution (``model.image_size``), every random draw from ``rng``. The steps are
torchvision's own transforms (``RandomResizedCrop``, ``ColorJitter``, ...) run under a torch seed drawn
from ``rng`` inside :func:`torch.random.fork_rng`, so torchvision's sampling is used as it is and the
run's global random state is left untouched.

Seeding (why a resumed run sees the very same pictures): the training picture at dataset index ``i`` in
epoch ``e`` of a run seeded ``s`` has the key ``example_rng(s, EpochIndex(i, e))``'s first draw; step ``k``
of the chain draws from ``numpy.random.default_rng([key, k])``, its first draw deciding whether it applies
(``< p``). Nothing depends on worker ids, call order or global state, and changing one step's ``p`` leaves
the other steps' draws as they were.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from ftrecipe.plugin import example_rng, resolve


def _seeded(transform: Callable[[Image.Image], Image.Image], image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``transform(image)`` with torch's generator seeded from ``rng`` (and restored afterwards)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(0, 2**63 - 1)))
        return transform(image)


def random_resized_crop(image: Image.Image, size: int, rng: np.random.Generator, *, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image.Image:
    return _seeded(v2.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio), antialias=True), image, rng)


def flip(image: Image.Image, size: int, rng: np.random.Generator, *, vertical: bool = False) -> Image.Image:
    """Always mirrors: the step's ``p`` (0.5 by default) is the chance that it is applied."""
    return (v2.functional.vertical_flip if vertical else v2.functional.horizontal_flip)(image)


def color_jitter(image: Image.Image, size: int, rng: np.random.Generator, *, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2, hue: float = 0.0) -> Image.Image:
    return _seeded(v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue), image, rng)


def rotation(image: Image.Image, size: int, rng: np.random.Generator, *, degrees: float = 15.0) -> Image.Image:
    return _seeded(v2.RandomRotation(degrees), image, rng)


def augmentation_key(seed: int, index: int) -> int:
    """The key of one training picture in one epoch (``index`` an ``EpochIndex``; a plain int is epoch 0)."""
    return int(example_rng(seed, index).integers(0, 2**63 - 1))


@dataclass(frozen=True)
class ChainStep:
    """One recipe step: ``apply(image, size, rng, **params)`` with probability ``p``."""

    name: str
    p: float
    params: Mapping[str, Any]
    apply: Callable[..., Image.Image]

    def describe(self) -> str:
        shown = ", ".join(f"{key}={value}" for key, value in self.params.items())
        return f"{self.name}({shown}) p={self.p:g}"


class AugmentChain:
    """The recipe's ``data.augment`` steps in order, each applied with its probability, seeded per picture."""

    def __init__(self, steps: Iterable[ChainStep] = ()) -> None:
        self.steps: tuple[ChainStep, ...] = tuple(steps)

    @classmethod
    def from_recipe(cls, recipe: Any, registry: Any) -> AugmentChain:
        """Steps from the validated sections and the ``apply`` functions the registry holds for them (a
        third-party plugin's image augmentations run like the built-in ones)."""
        records = registry.augmentations_for(recipe.model.modality)
        return cls(ChainStep(section.name, section.p, section.model_dump(exclude={"name", "p"}), resolve(records[section.name].apply))
                   for section in recipe.data.augment)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def crops(self) -> bool:
        """A step picks the crop itself (then the picture is only resized to the training size afterwards)."""
        return any(step.name == "random_resized_crop" for step in self.steps)

    def apply(self, image: Image.Image, size: int, key: int) -> tuple[Image.Image, list[str]]:
        """``image`` augmented, and the names of the steps that fired."""
        fired: list[str] = []
        for k, step in enumerate(self.steps):
            rng = np.random.default_rng([key, k])
            if rng.random() < step.p:
                image = step.apply(image, size, rng, **step.params)
                fired.append(step.name)
        return image, fired

    def describe(self) -> str:
        return " -> ".join(step.describe() for step in self.steps) or "no augmentation"
