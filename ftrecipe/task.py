"""The contract between the common runner and a modality plugin.

A modality's task builds the model (with its head), the data pipeline, the loss and the
evaluation; the runner owns devices, the loop, precision, freezing, checkpoints, progress and
outputs. Two paths, one outcome (:class:`FitResult`):

- **common loop** (the default): implement ``build_data``, ``build_model``, ``compute_loss``,
  ``evaluate`` and ``save``; the runner trains with Accelerate.
- **own loop** (``owns_loop = True``, for a library that keeps its inner loop, like Ultralytics'
  trainer): implement ``build_data``, ``fit``, ``evaluate`` and ``save``; ``fit`` trains and
  reports through the :class:`TrainSession` it is handed, which carries the built data, the step
  counts, the stop request and the one atomic checkpoint writer.

``ftrecipe plan`` asks the same task for an account before anything is downloaded, through the
``plan_*`` hooks: the model on the meta device from its config (:meth:`ModalityTask.plan_model`), one
forward pass on meta tensors (:meth:`ModalityTask.plan_forward`) whose saved tensors and FLOPs the
plan counts, and the data's size (:meth:`ModalityTask.plan_data`).

Torch-free at import: the registry imports task classes only for ``ftrecipe run`` and ``ftrecipe plan``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from ftrecipe.data import DataReport, DatasetSplits
from ftrecipe.errors import RecipeRuntimeError
from ftrecipe.freeze import FreezeReport, ModelAnatomy, apply_freeze_plan, discover_anatomy
from ftrecipe.plan_records import PlanData
from ftrecipe.records import resolve

if TYPE_CHECKING:
    import torch

    from ftrecipe.registry import Registry
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
    """Only the main process writes files meant for people (the runner writes its own outputs)."""
    log: Callable[[str], None] = print
    warn: Callable[[str], None] = print
    save_augmented: int = 0
    """Write this many augmented training examples under ``output_dir/augmented`` for people."""
    device: str | None = None
    """The device type the run trains on (``cuda``, ``cpu`` or ``mps``): a switch this hardware cannot
    honour is refused with a :class:`~ftrecipe.errors.RecipeRuntimeError` naming its key. None while
    `ftrecipe plan` asks (it runs before any device is chosen)."""
    runs_checkpoint_code: bool = True
    """Whether code a checkpoint carries may run here: its own modules (``model.trust_remote_code``,
    which the recipe then also says) or a pickled file's (``torch.load`` without ``weights_only``).
    True for `ftrecipe run`; for `plan` and `diff` only with ``--trust-remote-code``. Where it is False,
    raise :class:`~ftrecipe.hub.RemoteCodeRefused` instead of reading such a file."""
    evaluation: Literal["before", "periodic", "after"] | None = None
    """Which evaluation the common loop is running while it calls :meth:`ModalityTask.evaluate`:
    ``before`` (the base model, ``evaluation.before_training``), ``periodic`` (each ``training.eval_every``)
    or ``after`` (the final model); None outside an evaluation. A costly extra measure can run only at
    ``before`` and ``after``, and a comparison knows its baseline. A resumed run skips ``before`` (it was
    measured before the interruption): keep what a later evaluation compares with in the run's folder.
    A task with its own loop calls ``evaluate`` itself and so knows which it is; the runner leaves this
    None there (set it in ``fit`` around your own calls if your ``evaluate`` reads it)."""

    @property
    def seed(self) -> int:
        return self.recipe.training.seed


@dataclass
class DataBundle:
    """The task's datasets and how to batch them."""

    train: Any
    """A map-style dataset; with ``epoch_aware = True`` its indices are :class:`ftrecipe.data.EpochIndex`."""
    eval: Any | None
    collate: Callable[[list[Any]], Any]
    report: DataReport = field(default_factory=DataReport)
    """The data report, logged before training and stored in summary.json."""
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
    report: dict[str, Any] = field(default_factory=dict)
    """Tables beyond the scalar metrics (per group, per benchmark task; before, after and the change),
    JSON-serialisable: the final evaluation's is ``eval_report`` in summary.json (the trackers get it
    with the summary). Keys are the task's (name them after the recipe key that asked for them);
    ``metrics`` stay scalars, the numbers runs are compared by."""


@dataclass
class FitResult:
    """How training went: what the common loop returns and what ``fit`` returns from its own loop.

    ``fit`` fills ``model`` and ``steps`` (and ``epochs``, ``samples``, ``tokens`` where it knows
    them); the runner completes the rest from what the session saw.
    """

    model: Any
    steps: int
    epochs: int = 0
    """Complete passes over the training data."""
    samples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    eval_before: dict[str, float] | None = None
    eval_after: EvalResult | None = None
    freeze_report: FreezeReport | None = None


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a resumed run continues from."""

    directory: Path
    """What the task wrote into ``session.checkpoint(...)`` is in here."""
    step: int
    epoch: int


class TrainSession(Protocol):
    """What the runner hands :meth:`ModalityTask.fit`: the data, the schedule, and reporting.

    Every process calls ``fit``; the session writes files from the main process only. A typical loop::

        def fit(self, session):
            model, _ = session.freeze(self.build_model())
            start = session.resume_from()                       # None, or where to continue
            if start is None:
                session.evaluation("before", 0, self.evaluate(model, session.data, max_examples=None))
            step = start.step if start else 0                   # (and load your state from start.directory)
            session.start(step)
            while step < session.total_steps:
                ...one optimizer step...
                step += 1
                session.log(step, loss=loss, lr=lr, epoch=step / session.steps_per_epoch)
                if session.should_stop() or step % every == 0:
                    with session.checkpoint(step, epoch) as directory:
                        ...write your state into directory (main process)...
                    if session.stop_requested:
                        return FitResult(model, step)           # the runner exits 130 and prints the resume command
            session.evaluation("after", step, self.evaluate(model, session.data, max_examples=None))
            return FitResult(model, step)
    """

    data: DataBundle
    """The data the runner built with :meth:`ModalityTask.build_data` (once, before ``fit``)."""
    total_steps: int
    """Optimizer steps to run in all: ``--max-steps``, ``training.max_steps``, or ``training.epochs``
    times :attr:`steps_per_epoch`."""
    steps_per_epoch: int
    """Optimizer steps in one pass over ``data.train`` on all processes (batch size, accumulation and
    world size taken into account)."""
    is_main_process: bool
    world_size: int
    rank: int
    device: Any
    """The ``torch.device`` this process trains on."""
    stop_requested: bool
    """Ctrl-C or SIGTERM arrived (as agreed by all processes at the last :meth:`should_stop`)."""

    def resume_from(self) -> ResumePoint | None:
        """With ``--resume``: the last complete checkpoint (checked against the recipe), else None."""

    def freeze(self, model: Any) -> tuple[Any, FreezeReport]:
        """Apply the recipe's freeze plan, as the common loop does (PEFT-wrapped for LoRA)."""

    def start(self, start_step: int = 0) -> None:
        """Show progress from ``start_step`` of :attr:`total_steps`."""

    def log(self, step: int, *, loss: float, lr: float, epoch: float, **extra: float) -> None:
        """A logged training step: metrics.jsonl, the progress display and the callbacks."""

    def evaluation(self, when: Literal["before", "periodic", "after"], step: int, result: EvalResult) -> None:
        """``when``: ``before`` (the base model), ``periodic``, or ``after`` (the final model); the
        ``after`` result's ``report`` becomes summary.json's ``eval_report``."""

    def checkpoint(self, step: int, epoch: int = 0) -> AbstractContextManager[Path]:
        """All processes enter; yields an empty directory for the task's state, which becomes
        ``checkpoints/step-N`` atomically (renamed and synced once complete) when the block ends."""

    def should_stop(self) -> bool:
        """True once Ctrl-C or SIGTERM arrived: checkpoint this step and return. Call it at the same
        step on every process (it is a collective when several run)."""


class ModalityTask:
    """Base class of every modality's task; see the module docstring for the two paths."""

    owns_loop: ClassVar[bool] = False
    """True: the task trains in :meth:`fit` with its own loop instead of the common one."""
    launches_processes: ClassVar[bool] = False
    """True: the task's library starts its own processes for several devices, so the runner runs one
    process and leaves ``hardware.devices`` to the task (instead of starting one per device)."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.recipe = ctx.recipe

    # -- model ---------------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The base model with the recipe's head, on the CPU, before any freezing. Each call returns a new
        model: a sharded run (FSDP, ZeRO-3) calls it again at the end for the unsharded copy it gathers
        the trained weights into (their values are then replaced, so its architecture is what matters)."""
        raise NotImplementedError

    def anatomy(self, model: torch.nn.Module) -> ModelAnatomy:
        """Layer stacks and head of ``model``; the default discovers them from module names."""
        return discover_anatomy(model)

    # -- data ----------------------------------------------------------------------------------
    def build_data(self) -> DataBundle:
        """Datasets ready to batch (called once, before the model is built)."""
        raise NotImplementedError

    def read_data(self) -> DatasetSplits:
        """Rows from the recipe's dataset format, through whichever plugin registered it."""
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
        """The scalar loss of one micro-batch (already on the device). Common loop only."""
        raise NotImplementedError

    def apply_speedups(self, model: torch.nn.Module) -> dict[str, Any]:
        """The modality's own speed switches, applied to ``model`` after the freeze plan (PEFT's wrap
        included) and before the runner compiles and prepares it; returns each switch's state by name
        (``{"loss": "chunked"}``) for the run log and ``run.json``. Common loop only; the default has none.

        Refuse a switch this run cannot honour (``ctx.device``, a missing library, an unsupported
        model) with a :class:`~ftrecipe.errors.RecipeRuntimeError` naming its key: never fall back silently.
        """
        return {}

    def speed_settings(self) -> dict[str, Any]:
        """The speed switches as the run will use them (an ``auto`` setting resolved for the recipe's
        device), for ``ftrecipe plan`` and ``diff``: ``{"loss": "fused", "kernels": "liger"}``. Called
        before any model is built; the default has none."""
        return {}

    def fit(self, session: TrainSession) -> FitResult:
        """Train with your own inner loop (``owns_loop = True``), reporting through ``session``."""
        raise NotImplementedError(f"{type(self).__name__} sets owns_loop but does not implement fit()")

    # -- evaluation and saving -----------------------------------------------------------------
    def evaluate(self, model: torch.nn.Module, data: DataBundle, *, max_examples: int | None) -> EvalResult:
        """Metrics on ``data.eval`` (main process, no gradients, model in eval mode)."""
        raise NotImplementedError

    def metric(self, name: str, predictions: Sequence[Any], references: Sequence[Any], **options: Any) -> dict[str, float]:
        """Score with the registered metric ``name`` (an offline ``evaluate`` module) as ``{key: value}``."""
        record = self.ctx.registry.metrics_for(self.recipe.model.modality)[name]
        score = resolve(record.load)().compute(predictions=list(predictions), references=list(references), **options)
        if isinstance(score, dict):
            return {key: float(value) for key, value in score.items()}
        return {name: float(score)}

    def save(self, model: torch.nn.Module, directory: Path) -> None:
        """Write the final model in its ecosystem's native format (``save_pretrained``, ...)."""
        raise NotImplementedError

    def model_card_notes(self) -> Sequence[str]:
        """Extra Markdown lines for the model card README (how to load and use the model)."""
        return ()

    def model_card_metadata(self) -> dict[str, Any]:
        """Hugging Face model-card metadata of the saved model: ``library_name``, ``pipeline_tag``,
        extra ``tags``, ``datasets``; the runner adds ``base_model`` (``model.base``, which the Hub reads
        as a repository id: return ``"base_model": None`` where the base is no such id) and ftrecipe's tags."""
        return {}

    # -- planning (`ftrecipe plan`) -----------------------------------------------------------
    planner: ClassVar[str] = ""
    """``"module:Class"`` of the task's plan, the one place its plan hooks live: made once per task as
    ``Class(task)`` when `ftrecipe plan` first asks (a run never imports it), its methods answer the
    ``plan_*`` hooks by name without the prefix: ``model()``, ``forward(model, batch_size)``, and where
    it defines them ``freeze(model)``, ``checkpoint_units(model)``, ``extras(model)``, ``data()``. It
    holds what the hooks share (the data read once, the tokenizer) and never imports the task's module."""

    def plan(self) -> Any:
        """The task's :attr:`planner` object, made once."""
        if "_plan" not in self.__dict__:
            if not self.planner:
                raise NotImplementedError(f"{type(self).__name__} names no planner for ftrecipe plan")
            self._plan = resolve(self.planner)(self)
        return self._plan

    def _planned(self, hook: str) -> Callable[..., Any] | None:
        return getattr(self.plan(), hook, None) if self.planner else None

    def plan_model(self) -> torch.nn.Module:
        """What :meth:`build_model` returns (head included, before freezing, in the dtype it loads
        the weights in on the device the recipe is meant for: the plan's recipe has
        ``hardware.precision`` resolved), built on the meta device from the configuration alone: nothing is read
        from weight files or downloaded. Configs of well-known bases travel with the plugin; a
        local directory or the Hugging Face cache supplies the rest. Raise ``RecipeRuntimeError``
        at ``("model", "base")`` when no config is at hand. With ``model.quantization`` return the
        plain model: the plan counts the quantised layers' bytes itself (every exact
        ``torch.nn.Linear`` outside the head). What the measuring hooks give is remembered between
        plans across changes of ``ftrecipe.plan.build.SETTINGS_ONLY`` (batch size, steps, budget,
        devices): they must not read those keys."""
        if (model := self._planned("model")) is None:
            raise NotImplementedError(f"{type(self).__name__} does not describe its model for ftrecipe plan")
        return model()

    def plan_freeze(self, model: torch.nn.Module) -> tuple[torch.nn.Module, FreezeReport]:
        """Apply the recipe's freeze plan to the meta model exactly as the run will (PEFT adapters
        included): the trainable count the plan reports is the one the run trains. The default is
        the common loop's; a task that freezes through its library overrides it."""
        if (freeze := self._planned("freeze")) is not None:
            return freeze(model)
        return apply_freeze_plan(model, self.recipe, self.anatomy(model))

    def plan_forward(self, model: torch.nn.Module, batch_size: int) -> Any:
        """One training forward pass of ``batch_size`` examples of the recipe's largest shape
        (``max_length`` tokens, the training resolution, the audio window) on meta tensors, with the
        loss where it can be computed without data-dependent steps. The plan records the tensors
        autograd saves for the backward pass (activations) and the FLOPs; ``model`` is the frozen
        meta model in the compute dtype, already in training mode."""
        if (forward := self._planned("forward")) is None:
            raise NotImplementedError(f"{type(self).__name__} does not describe its forward pass for ftrecipe plan")
        return forward(model, batch_size)

    def plan_checkpoint_units(self, model: torch.nn.Module) -> list[str]:
        """Module names that ``training.gradient_checkpointing`` recomputes in the backward pass
        (their inputs are kept, their insides are not). Default: every layer of every stack."""
        if (units := self._planned("checkpoint_units")) is not None:
            return units(model)
        return [layer for layers in self.anatomy(model).stacks.values() for layer in layers]

    def plan_extras(self, model: torch.nn.Module) -> dict[str, int]:
        """Bytes per device the task keeps beside the model and its optimizer (an EMA copy of the
        weights, a frozen VAE kept outside the trained model): name -> bytes."""
        if (extras := self._planned("extras")) is not None:
            return extras(model)
        return {}

    def plan_data(self) -> PlanData:
        """The data's size without loading the model. Default: the format's reader, counted; a task
        adds its measures (tokens, images, audio hours), label balance and guidance."""
        if (data := self._planned("data")) is not None:
            return data()
        splits = self.plan_splits()
        if splits is None:
            return PlanData(unavailable=self.plan_unavailable)
        return PlanData(train_examples=len(splits.train), eval_examples=len(splits.eval or ()),
                        warnings=list(splits.report.warnings))

    plan_unavailable: str | None = None
    """Why :meth:`plan_splits` found no data here (a missing file, a hub dataset)."""

    def plan_splits(self) -> DatasetSplits | None:
        """The format reader's rows for every plan hook, read once per task; None when the data cannot be
        read here (:attr:`plan_unavailable` says why): a plan goes on without it."""
        if "_plan_splits" not in self.__dict__:
            try:
                self._plan_splits: DatasetSplits | None = self.read_data()
            except RecipeRuntimeError as error:
                self._plan_splits, self.plan_unavailable = None, error.message
        return self._plan_splits
