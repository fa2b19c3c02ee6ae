"""Training and evaluation datasets: an instance photo (and a class image) per index, and their batching."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ftrecipe.plugin import example_rng, load_rgb
from ftrecipe_diffusion.images import prepare


class SubjectDataset(torch.utils.data.Dataset):
    """Index i: instance photo ``i % n`` and, with prior preservation, class image ``i % m`` (an epoch is
    the longer of the two lists, as in the DreamBooth paper's set-up). Crop, flip and the loss's noise
    seeds come from ``example_rng(seed, index)``; ``train=False`` gives the centre crop, unflipped."""

    epoch_aware = True

    def __init__(self, instances: list[dict], classes: list[dict], section: Any, seed: int, *, train: bool) -> None:
        self.instances, self.classes, self.seed, self.train = instances, classes, seed, train
        self.resolution, self.center_crop, self.flip = section.resolution, section.center_crop, section.flip

    def __len__(self) -> int:
        return max(len(self.instances), len(self.classes)) if self.train else len(self.instances)

    def example(self, row: dict, rng: np.random.Generator | None, seed: int, is_class: bool) -> dict[str, Any]:
        image = row["image"]
        image = load_rgb(image) if isinstance(image, str) else image.convert("RGB")
        pixels = prepare(image, self.resolution, center_crop=self.center_crop or not self.train,
                         flip=self.flip and self.train, rng=rng)
        return {"pixels": pixels, "prompt": row["prompt"], "key": row["key"], "seed": seed, "is_class": is_class}

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        rng = example_rng(self.seed, index)
        seeds = rng.integers(0, 2**62, size=2)
        items = [self.example(self.instances[int(index) % len(self.instances)], rng, int(seeds[0]), False)]
        if self.classes and self.train:
            items.append(self.example(self.classes[int(index) % len(self.classes)], rng, int(seeds[1]), True))
        return items


class SubjectCollator:
    """Instance examples first, then class examples; prompts tokenized as the pipeline does (padded to the maximum)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True,
                              return_tensors="pt").input_ids

    def __call__(self, groups: list[list[dict[str, Any]]]) -> dict[str, Any]:
        items = [item for group in groups for item in group]
        items.sort(key=lambda item: item["is_class"])  # stable: instance order kept
        return {
            "pixel_values": torch.from_numpy(np.stack([item["pixels"] for item in items])),
            "input_ids": self.tokenize([item["prompt"] for item in items]),
            "is_class": torch.tensor([item["is_class"] for item in items]),
            "seeds": [item["seed"] for item in items],
            "keys": [item["key"] for item in items],
            "prompts": [item["prompt"] for item in items],
        }
