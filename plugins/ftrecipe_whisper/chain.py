"""The augmentation chain `ftrecipe run` applies to Whisper training clips.

Built from the recipe's validated ``data.augment`` sections (the one parameter spec, in
:mod:`ftrecipe_whisper.sections` for the built-ins) and the ``apply`` functions the plugin registry
holds for them, so a third-party plugin's augmentations run exactly like the built-in ones.

Seeding (see :mod:`ftrecipe_whisper.augment`): step ``k`` for dataset item ``i`` in epoch ``e`` of a
run seeded ``s`` draws from ``numpy.random.default_rng([s, e, i, k])``; its first draw
``rng.random() < p`` decides whether the step applies, later draws are the step's own. A resumed
run, any number of loader workers, or another ``p`` on one step leaves every other step's audio as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ftrecipe.plugin import AugmentationSection, RecipeRuntimeError, Registry, resolve
from ftrecipe_whisper.augment import noise_files, step_rng
from ftrecipe_whisper.sections import NoiseAugmentation

__all__ = ["AugmentedChain", "ChainStep"]


def _show(value: Any) -> str:
    """A parameter for the run log: a range as ``5..25``, a choice as ``white|pink``, numbers as ``%g``."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return f"{value[0]:g}..{value[1]:g}"
    if isinstance(value, (list, tuple)):
        return "|".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class ChainStep:
    """One recipe step: ``apply(wave, sample_rate, rng, **params)`` with probability ``p``."""

    name: str
    p: float
    params: Mapping[str, Any]
    apply: Callable[..., np.ndarray]

    def describe(self) -> str:
        shown = ", ".join(f"{key}={_show(value)}" for key, value in self.params.items() if value is not None)
        return f"{self.name}({shown}) p={self.p:g}"


def _noise_folder(noise_dir: str, base_dir: Path, where: tuple[str | int, ...]) -> str:
    """``noise_dir`` resolved against the recipe's folder; a missing or audio-less folder is the recipe's mistake."""
    folder = (base_dir / Path(noise_dir).expanduser()).resolve()
    if not folder.is_dir():
        raise RecipeRuntimeError(where, f"no such folder: {folder}")
    try:
        noise_files(str(folder))
    except ValueError as error:
        raise RecipeRuntimeError(where, str(error)) from error
    return str(folder)


class AugmentedChain:
    """The recipe's augmentation steps, in order, each applied with its probability, seeded per sample key."""

    def __init__(self, steps: Iterable[ChainStep] = ()) -> None:
        self.steps: tuple[ChainStep, ...] = tuple(steps)

    @classmethod
    def from_sections(cls, sections: Sequence[AugmentationSection], registry: Registry, modality: str,
                      base_dir: Path = Path(".")) -> AugmentedChain:
        """Steps from validated sections; each section's fields (all but ``name`` and ``p``) are the keyword arguments."""
        records = registry.augmentations_for(modality)
        steps = []
        for index, section in enumerate(sections):
            params = section.model_dump(exclude={"name", "p"})
            if isinstance(section, NoiseAugmentation) and section.noise_dir is not None:
                params["noise_dir"] = _noise_folder(section.noise_dir, base_dir, ("data", "augment", index, "noise_dir"))
            steps.append(ChainStep(section.name, section.p, params, resolve(records[section.name].apply)))
        return cls(steps)

    @classmethod
    def from_recipe(cls, recipe: Any, registry: Registry, base_dir: Path = Path(".")) -> AugmentedChain:
        """The chain of ``recipe.data.augment``; relative paths resolve against ``base_dir`` (the recipe's folder)."""
        return cls.from_sections(recipe.data.augment, registry, recipe.model.modality, base_dir)

    def __len__(self) -> int:
        return len(self.steps)

    def apply(self, wave: np.ndarray, sr: int, key: Sequence[int]) -> tuple[np.ndarray, list[str]]:
        """``wave`` augmented (float32; the input itself when no step fires) and the names of the steps that fired.

        ``key`` is ``sample_seed(seed, epoch, index)``: step k draws from ``default_rng([*key, k])``.
        """
        out = np.asarray(wave, dtype=np.float32)
        fired: list[str] = []
        for k, step in enumerate(self.steps):
            rng = step_rng(key, k)
            if rng.random() < step.p:
                out = np.asarray(step.apply(out, sr, rng, **step.params), dtype=np.float32)
                fired.append(step.name)
        return out, fired

    def __call__(self, wave: np.ndarray, sr: int, key: Sequence[int]) -> np.ndarray:
        return self.apply(wave, sr, key)[0]

    def describe(self) -> str:
        """One line for the run log, e.g. ``telephone(low_hz=300, ..., codec=mulaw|alaw) p=0.7 -> noise(snr_db=5..25, ...) p=0.6``."""
        return " -> ".join(step.describe() for step in self.steps) or "no augmentation"
