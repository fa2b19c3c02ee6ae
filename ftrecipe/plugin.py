"""The public plugin API: everything a plugin author needs, from one module.

::

    from ftrecipe.plugin import DatasetFormat, ModalityTask, Modality, ModelSection, hookimpl

The built-in plugins import from here and nothing deeper (a test enforces it), so what they can do,
a third-party plugin can do. The guide is ``docs/plugins.md``; each hook's reference, with a
complete example, is in :mod:`ftrecipe.hookspec`. Importing this module never imports torch:
registration modules run on every ``ftrecipe validate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftrecipe.callbacks import RunCallback
from ftrecipe.data import (
    ROW_FILE_SUFFIXES,
    SMOKE_EVAL_EXAMPLES,
    SMOKE_TRAIN_EXAMPLES,
    DataReport,
    DatasetSplits,
    EpochIndex,
    Row,
    RowFileError,
    example_rng,
    example_seed,
    iter_rows,
    make_splits,
    read_rows,
    require_source,
    resolve_sources,
    select_examples,
    source_paths,
    split_holdout,
    where_of,
)
from ftrecipe.checks import pretrained_check
from ftrecipe.errors import RecipeRuntimeError, RunFailure
from ftrecipe.freeze import FreezeReport, ModelAnatomy, peft_modules_to_save
from ftrecipe.hookspec import hookimpl
from ftrecipe.hub import RemoteCodeRefused, find_config, load_pretrained, looks_like_hub_id
from ftrecipe.libraries import switch_checkpointing
from ftrecipe.records import Augmentation, Callback, DatasetFormat, Metric, Modality, Problem, resolve
from ftrecipe.plan_records import DataGuidance, PlanData
from ftrecipe.registry import Registry
from ftrecipe.sections import (
    LOCAL_PATH,
    AugmentationSection,
    DataSection,
    EvaluationSection,
    FreezeSection,
    GenerationSettings,
    HardwareSection,
    HeadSection,
    ModelSection,
    OutputSection,
    RecipeBase,
    Section,
    TrainingSection,
)
from ftrecipe.task import (
    DataBundle,
    EvalResult,
    FitResult,
    ModalityTask,
    ResumePoint,
    TaskContext,
    TrainSession,
)

if TYPE_CHECKING:  # loaded on first use through __getattr__ below
    from ftrecipe.images import IMAGE_SUFFIXES, ImageProblem, check_image, draw_shapes, image_files, load_rgb, upright_size

__all__ = [
    "LOCAL_PATH",
    "RemoteCodeRefused",
    # registration
    "hookimpl",
    "Modality",
    "DatasetFormat",
    "Augmentation",
    "Metric",
    "Callback",
    "Problem",
    "Registry",
    "resolve",
    # recipe sections to extend
    "Section",
    "ModelSection",
    "DataSection",
    "AugmentationSection",
    "EvaluationSection",
    "GenerationSettings",
    "FreezeSection",
    "HeadSection",
    "TrainingSection",
    "HardwareSection",
    "OutputSection",
    "RecipeBase",
    # the task contract
    "ModalityTask",
    "TaskContext",
    "DataBundle",
    "EvalResult",
    "FitResult",
    "TrainSession",
    "ResumePoint",
    "ModelAnatomy",
    "peft_modules_to_save",
    "FreezeReport",
    "RunCallback",
    # what `ftrecipe plan` asks of a task
    "PlanData",
    "DataGuidance",
    # data helpers
    "DatasetSplits",
    "DataReport",
    "EpochIndex",
    "example_rng",
    "example_seed",
    "iter_rows",
    "read_rows",
    "Row",
    "where_of",
    "RowFileError",
    "require_source",
    "source_paths",
    "resolve_sources",
    "split_holdout",
    "select_examples",
    "make_splits",
    "SMOKE_TRAIN_EXAMPLES",
    "SMOKE_EVAL_EXAMPLES",
    "ROW_FILE_SUFFIXES",
    # models from a hub or a folder
    "load_pretrained",
    "find_config",
    "looks_like_hub_id",
    "pretrained_check",
    "switch_checkpointing",
    # pictures (loaded on first use: Pillow and NumPy, never torch)
    "IMAGE_SUFFIXES",
    "ImageProblem",
    "check_image",
    "load_rgb",
    "image_files",
    "upright_size",
    "draw_shapes",
    # errors
    "RecipeRuntimeError",
    "RunFailure",
]

_IMAGE_HELPERS = frozenset({"IMAGE_SUFFIXES", "ImageProblem", "check_image", "load_rgb", "image_files", "upright_size", "draw_shapes"})


def __getattr__(name: str):
    """The picture helpers of :mod:`ftrecipe.images`, imported when a task first asks (Pillow stays
    out of every `ftrecipe validate`)."""
    if name in _IMAGE_HELPERS:
        from ftrecipe import images

        return getattr(images, name)
    raise AttributeError(f"module 'ftrecipe.plugin' has no attribute {name!r}")
