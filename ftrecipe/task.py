"""The contract between the common runner and a modality plugin.

A modality's task builds the model (with its head), the data pipeline, the loss and the
evaluation; the runner owns devices, the loop, precision, freezing, checkpoints, progress and
outputs. A task whose inner loop belongs to another library (Ultralytics' trainer, say) sets
``owns_loop = True`` and implements :meth:`ModalityTask.fit`, reporting through the
:class:`~ftrecipe.runner.session.TrainSession` it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch

    from ftrecipe.data import DatasetSplits
    from ftrecipe.registry import Registry
    from ftrecipe.runner.session import FitResult, TrainSession
    from ftrecipe.sections import RecipeBase


@dataclass
class TaskContext:
    """What a task may know about the run."""

    recipe: RecipeBase
    registry: Registry
    base_dir: Path
    """The recipe's folder: relative data paths resolve against it."""
    output_dir: Path
    smoke: bool = False
    """Build a tiny randomly initialised model of the same family and use a few examples."""
    is_main_process: bool = True
    log: Callable[[str], None] = print
    warn: Callable[[str], None] = print
    save_augmented: int = 0
    """Write this many augmented training examples under ``output_dir/augmented`` for people."""

    @property
    def seed(self) -> int:
        return self.recipe.training.seed


@dataclass
class ModelAnatomy:
    """Where a model's layer stacks and head are, so one freeze grammar fits every architecture."""

    stacks: dict[str, list[str]]
    """Stack name -> module names of its layers, input side first (e.g. ``decoder``)."""
    main_stack: str | None
    head: list[str] = field(default_factory=list)
    """Module names of the output head (trained by ``transfer``, saved in full by LoRA)."""
    peft_task_type: str | None = None
    """PEFT ``TaskType`` name (``CAUSAL_LM``, ``SEQ_CLS``, ...) or None for a plain ``PeftModel``."""


@dataclass
class DataBundle:
    """The task's datasets and how to batch them."""

    train: Any
    """A map-style dataset; with ``epoch_aware = True`` its indices are :class:`ftrecipe.data.EpochIndex`."""
    eval: Any | None
    collate: Callable[[list[Any]], Any]
    report: dict[str, Any] = field(default_factory=dict)
    """The data report (counts, hours, skipped examples and why), stored in summary.json."""
    files: list[Path] = field(default_factory=list)
    """Every data file read, hashed into run.json."""


@dataclass
class EvalResult:
    """Metrics, plus things for people to look at."""

    metrics: dict[str, float]
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Predictions next to references (worst first where that means something)."""
    images: dict[str, Any] = field(default_factory=dict)
    """Name -> PIL image (for image generators: sample grids)."""


class ModalityTask:
    """Base class of every modality's task; see the module docstring."""

    owns_loop: ClassVar[bool] = False

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.recipe = ctx.recipe

    # -- model ---------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The base model with the recipe's head, on the CPU, before any freezing."""
        raise NotImplementedError

    def anatomy(self, model: torch.nn.Module) -> ModelAnatomy:
        """Layer stacks and head of ``model``; the default discovers them from module names."""
        from ftrecipe.freeze import discover_anatomy

        return discover_anatomy(model)

    # -- data ----------------------------------------------------------------------------------
    def build_data(self) -> DataBundle:
        raise NotImplementedError

    def read_data(self) -> DatasetSplits:
        """Rows from the recipe's dataset format, through whichever plugin registered it."""
        from ftrecipe.records import resolve

        data, ctx = self.recipe.data, self.ctx
        reader = resolve(ctx.registry.dataset_formats[(self.recipe.model.modality, data.format)].reader)
        return reader(data, base_dir=ctx.base_dir, seed=ctx.seed, smoke=ctx.smoke)

    def batch_counts(self, batch: Any) -> tuple[int, int]:
        """(examples, tokens) in a batch, for throughput; tokens 0 where they mean nothing."""
        import torch

        if isinstance(batch, dict):
            for value in batch.values():
                if isinstance(value, torch.Tensor):
                    return int(value.shape[0]), 0
        return 0, 0

    # -- training ------------------------------------------------------------------------------
    def compute_loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar loss of one micro-batch (already on the device)."""
        raise NotImplementedError

    def fit(self, session: TrainSession) -> FitResult:
        """Train with your own inner loop (``owns_loop = True``), reporting through ``session``:
        ``session.freeze(model)``, ``session.log(step, loss=..., lr=..., epoch=...)``,
        ``with session.checkpoint(step) as directory: ...`` and ``session.evaluation("after", step, result)``.
        """
        raise NotImplementedError(f"{type(self).__name__} sets owns_loop but does not implement fit()")

    # -- evaluation and saving -----------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        raise NotImplementedError

    def metric(self, name: str, predictions: Sequence[Any], references: Sequence[Any], **options: Any) -> dict[str, float]:
        """Score with the registered metric ``name`` (an offline ``evaluate`` module) as ``{key: value}``."""
        from ftrecipe.records import resolve

        record = self.ctx.registry.metrics_for(self.recipe.model.modality)[name]
        score = resolve(record.load)().compute(predictions=list(predictions), references=list(references), **options)
        if isinstance(score, dict):
            return {key: float(value) for key, value in score.items()}
        return {name: float(score)}

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        """Write the final model in its ecosystem's native format (``save_pretrained``, ...)."""
        raise NotImplementedError

    def model_card_notes(self) -> Sequence[str]:
        """Extra lines for the model card README."""
        return ()
