"""The recipe's `data.augment` list mapped onto Ultralytics' augmentation hyperparameters.

Ultralytics applies its own augmentation inside its data loader (seeded by its trainer), so an
augmentation of this modality is a function ``apply(p, **params) -> {hyperparameter: value}``. The
list is the whole truth: an augmentation the recipe does not name is off. A recipe without
``data.augment`` gets Ultralytics' detection defaults (listed in the run log like any other).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftrecipe.plugin import AugmentationSection, Registry, resolve

# Every augmentation hyperparameter the mapping controls, at "off".
OFF: dict[str, float] = {"fliplr": 0.0, "flipud": 0.0, "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0, "scale": 0.0,
                         "translate": 0.0, "mosaic": 0.0, "mixup": 0.0, "degrees": 0.0, "shear": 0.0,
                         "perspective": 0.0, "copy_paste": 0.0, "cutmix": 0.0}
# Ultralytics' defaults for detection (ultralytics/cfg/default.yaml).
DEFAULTS: dict[str, float] = {**OFF, "fliplr": 0.5, "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4, "scale": 0.5,
                              "translate": 0.1, "mosaic": 1.0}


def flip(p: float, vertical: float) -> dict[str, float]:
    return {"fliplr": p, "flipud": vertical}


def hsv(p: float, hue: float, saturation: float, value: float) -> dict[str, float]:
    return {"hsv_h": hue * p, "hsv_s": saturation * p, "hsv_v": value * p}


def scale(p: float, gain: float) -> dict[str, float]:
    return {"scale": gain * p}


def translate(p: float, fraction: float) -> dict[str, float]:
    return {"translate": fraction * p}


def mosaic(p: float) -> dict[str, float]:
    return {"mosaic": p}


def mixup(p: float) -> dict[str, float]:
    return {"mixup": p}


def hyperparameters(sections: Sequence[AugmentationSection], registry: Registry, modality: str) -> dict[str, float]:
    """Ultralytics' augmentation arguments for the recipe's list (its defaults when the list is empty)."""
    if not sections:
        return dict(DEFAULTS)
    records = registry.augmentations_for(modality)
    chosen = dict(OFF)
    for section in sections:
        params: dict[str, Any] = section.model_dump(exclude={"name", "p"})
        chosen.update(resolve(records[section.name].apply)(section.p, **params))
    return chosen


def describe(values: dict[str, float]) -> str:
    on = {k: v for k, v in values.items() if v}
    return ", ".join(f"{k}={v:g}" for k, v in on.items()) or "no augmentation"
