"""The recipe's sections as pydantic models.

The core owns the sections every modality shares (freeze, head, training, hardware, evaluation,
output) and the *base* classes of the sections plugins extend: a modality subclasses
:class:`ModelSection` (discriminated by ``model.modality``), a dataset format subclasses
:class:`DataSection` (discriminated by ``data.format``) and an augmentation subclasses
:class:`AugmentationSection` (discriminated by ``name``); a modality may extend a shared section
with keys of its own (``Modality.sections``). :mod:`ftrecipe.schema` assembles them.

This module must stay importable without torch: it runs on every ``ftrecipe validate``.
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ByteSize, ConfigDict, Field, field_validator, model_validator

from ftrecipe.gpus import GPUS

GpuName = Literal[tuple(GPUS)]  # type: ignore[valid-type]


class LocalPath:
    """Field metadata: the value names a file or folder on this machine (a string, or a list of them),
    relative to the recipe. ``ftrecipe validate|plan|diff --untrusted`` refuses such a value when it
    leaves the repository; a plugin marks its own path fields the same way::

        manifest: Annotated[str, LOCAL_PATH]
    """

    def __repr__(self) -> str:
        return "LOCAL_PATH"


LOCAL_PATH = LocalPath()


class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


def section_of(annotation: Any) -> type[Section] | None:
    """The section class a field holds (``X``, ``X | None``), or None for a plain value."""
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, Section) else None
    for arg in typing.get_args(annotation):
        found = section_of(arg)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- model


class Quantization(Section):
    """Load the frozen base weights quantised through bitsandbytes (QLoRA uses 4-bit NF4)."""

    bits: Literal[4, 8] = 4
    """4 (NF4/FP4, QLoRA) or 8 (LLM.int8)."""
    type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type; ignored for 8-bit."""
    double_quant: bool = True
    """Quantise the quantisation constants too (saves about 0.4 bits per parameter)."""
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    """dtype the de-quantised matmuls run in."""


class ModelSection(Section):
    """Which modality plugin runs the recipe and which base model it starts from.

    Plugins subclass this with ``modality: Literal["their-name"]`` and their own fields.
    """

    modality: str
    """The modality plugin that runs this recipe (see `ftrecipe plugins`)."""
    base: Annotated[str, LOCAL_PATH]
    """Hub id (``org/name``) or local directory of the pre-trained model; with ``init: scratch``
    the architecture family or a local config."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) to pin."""
    init: Literal["pretrained", "scratch"] = "pretrained"
    """``pretrained`` loads the base weights; ``scratch`` initialises the architecture randomly."""
    config: dict[str, int | float | bool | str] = Field(default_factory=dict)
    """Architecture config overrides, applied before the weights are created (``scratch`` only)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """dtype the weights are loaded in; ``auto`` follows ``hardware.precision``."""
    quantization: Quantization | None = None
    """Quantise the frozen base weights (requires a LoRA strategy)."""
    trust_remote_code: bool = False
    """Run modelling code shipped with the checkpoint. Off unless written explicitly."""


# --------------------------------------------------------------------------- freeze

_LAYER_SPEC = re.compile(r"^\s*(\d+\s*(-\s*\d+)?)(\s*,\s*\d+\s*(-\s*\d+)?)*\s*$")


class LayerRange(Section):
    """A set of layers of one layer stack: ``first: 8``, ``last: 2`` or ``indices: "0-3,6"``."""

    stack: str | None = None
    """Which layer stack (e.g. ``encoder`` or ``decoder``); the modality's main stack when omitted."""
    first: Annotated[int, Field(ge=1)] | None = None
    """The first N layers (closest to the input)."""
    last: Annotated[int, Field(ge=1)] | None = None
    """The last N layers (closest to the head)."""
    indices: str | None = None
    """Explicit layer indices and ranges, e.g. ``"0-7"`` or ``"0-3,10"``."""

    @field_validator("indices")
    @classmethod
    def _indices_syntax(cls, value: str | None) -> str | None:
        if value is not None and not _LAYER_SPEC.match(value):
            raise ValueError('indices must look like "0-7" or "0-3,10"')
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> LayerRange:
        chosen = [k for k in ("first", "last", "indices") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of first, last or indices")
        return self

    def resolve(self, num_layers: int) -> list[int]:
        """The layer indices this range names in a stack of ``num_layers``."""
        if self.first is not None:
            return list(range(min(self.first, num_layers)))
        if self.last is not None:
            return list(range(max(0, num_layers - self.last), num_layers))
        chosen: set[int] = set()
        for part in (self.indices or "").split(","):
            lo, _, hi = part.strip().partition("-")
            chosen.update(range(int(lo), int(hi or lo) + 1))
        return sorted(i for i in chosen if i < num_layers)


class LoraSettings(Section):
    """LoRA adapter settings, handed to PEFT's ``LoraConfig``."""

    r: Annotated[int, Field(ge=1, le=1024)] = 16
    """Adapter rank."""
    alpha: Annotated[float, Field(gt=0)] = 32
    """Scaling numerator: updates are scaled by alpha / r."""
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.05
    """Dropout on the adapter input."""
    target_modules: Literal["all-linear"] | list[str] = "all-linear"
    """Module names (or suffixes) to adapt, or ``all-linear``."""
    bias: Literal["none", "all", "lora_only"] = "none"
    """Which biases train alongside the adapters."""


class FreezeSection(Section):
    """What trains and what stays as pre-trained. One grammar for every modality.

    - ``full``: everything trains (fine-tuning).
    - ``transfer``: the pre-trained body is frozen; the head trains, plus ``unfreeze_top`` layers
      and ``train`` globs.
    - ``partial``: everything trains except ``freeze`` globs and ``freeze_layers``; ``train`` globs
      win over both.
    - ``lora`` / ``qlora``: the base is frozen and LoRA adapters train (QLoRA: on a 4-bit base);
      ``train`` globs name extra modules trained and saved in full (e.g. a new head).
    """

    strategy: Literal["full", "transfer", "partial", "lora", "qlora"] = "full"
    """How the pre-trained weights are treated."""
    freeze: list[str] = Field(default_factory=list)
    """Parameter-name globs to freeze (``partial``), e.g. ``model.embed_tokens.*``."""
    freeze_layers: LayerRange | None = None
    """Layers to freeze (``partial``), e.g. ``{first: 8}``."""
    unfreeze_top: Annotated[int, Field(ge=0)] = 0
    """Layers nearest the head that train too (``transfer``)."""
    unfreeze_stack: str | None = None
    """Layer stack ``unfreeze_top`` counts in; the modality's main stack when omitted."""
    train: list[str] = Field(default_factory=list)
    """Parameter-name globs that always train (all strategies but ``full``)."""
    lora: LoraSettings | None = None
    """LoRA settings (``lora`` / ``qlora``); defaults apply when omitted."""


# --------------------------------------------------------------------------- head


class HeadSection(Section):
    """The output head: keep the pre-trained one, replace it, or append a new one."""

    mode: Literal["keep", "replace", "append"] = "keep"
    """``keep`` the model's head, ``replace`` it with a freshly initialised one for the new label
    set, or ``append`` a new head on top of the existing outputs."""
    labels: list[str] | None = None
    """Class names of the new head (their order is the label ids)."""
    num_labels: Annotated[int, Field(ge=1)] | None = None
    """Number of outputs of the new head, when the labels have no names."""

    labels_from_data: ClassVar[bool] = False
    """A modality whose new head takes the dataset's classes when ``labels`` is not given sets this in its
    subclass (a detector's data names its classes); otherwise a new head needs ``labels`` or ``num_labels``."""

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            seen = [label for i, label in enumerate(value) if label in value[:i]]
            if seen:
                raise ValueError(f"labels repeat: {', '.join(sorted(set(seen)))}")
            if not value:
                raise ValueError("labels must not be empty")
        return value

    def output_size(self) -> int | None:
        """How many outputs the new head has, if it has a fixed number."""
        return len(self.labels) if self.labels else self.num_labels


# --------------------------------------------------------------------------- data


class AugmentationSection(Section):
    """One augmentation step. Plugins subclass this with ``name: Literal[...]`` and parameters."""

    name: str
    """Which augmentation (see `ftrecipe plugins`)."""
    p: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Probability that this step is applied to a given example."""


class DataSection(Section):
    """Where the examples come from. Dataset-format plugins subclass this with ``format: Literal[...]``."""

    format: str
    """Dataset format (see `ftrecipe plugins`)."""
    train: Annotated[str | list[str] | None, LOCAL_PATH] = None
    """Training source: file path(s) relative to the recipe, a directory, or a dataset id."""
    eval: Annotated[str | list[str] | None, LOCAL_PATH] = None
    """Evaluation source; when omitted, ``eval_fraction`` of train is held out."""
    eval_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1
    """Share of the training examples held out for evaluation when ``eval`` is not given."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Map from the format's canonical column names to the source's column names."""
    limit: Annotated[int, Field(ge=1)] | None = None
    """Use only the first N training examples (quick experiments)."""
    on_error: Literal["skip", "fail"] = "skip"
    """What a corrupt example does: ``skip`` it (counted and reported) or ``fail`` the run."""
    augment: list[AugmentationSection] = Field(default_factory=list)
    """Augmentations applied on the fly to training examples, in order."""


# --------------------------------------------------------------------------- training


BITSANDBYTES_OPTIMIZERS = ("adamw-8bit", "paged-adamw-8bit")
"""The ``training.optimizer`` values bitsandbytes provides: 8-bit AdamW states, paged or not."""


class TrainingSection(Section):
    """The optimisation loop's settings."""

    epochs: Annotated[float, Field(gt=0)] | None = None
    """Passes over the training data (default 1 when ``max_steps`` is not set)."""
    max_steps: Annotated[int, Field(ge=1)] | None = None
    """Optimizer steps to run; wins over ``epochs``."""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """Examples per device per micro-batch."""
    gradient_accumulation: Annotated[int, Field(ge=1)] = 1
    """Micro-batches per optimizer step."""
    optimizer: Literal["adamw", "adamw-8bit", "paged-adamw-8bit", "sgd", "adafactor"] = "adamw"
    """Optimizer (``adamw-8bit`` through bitsandbytes; ``paged-adamw-8bit`` also pages its state out to host
    memory when the GPU runs short, CUDA only)."""
    learning_rate: Annotated[float, Field(gt=0, le=10)] = 2e-5
    """Peak learning rate."""
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    """Decoupled weight decay (biases and norms are exempt)."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW beta1 and beta2."""
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt"] = "linear"
    """Learning-rate schedule after warm-up."""
    warmup_steps: Annotated[int, Field(ge=0)] | None = None
    """Linear warm-up length in optimizer steps."""
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] | None = None
    """Warm-up as a share of all optimizer steps (instead of ``warmup_steps``)."""
    max_grad_norm: Annotated[float, Field(gt=0)] | None = 1.0
    """Clip the global gradient norm; null disables clipping."""
    seed: int = 42
    """Seeds model init, data order, dropout and augmentation: the same seed gives the same run."""
    eval_every: Annotated[int, Field(ge=1)] | None = None
    """Evaluate every N optimizer steps (and always at the end)."""
    checkpoint_every: Annotated[int, Field(ge=1)] | None = None
    """Checkpoint every N optimizer steps (and always at the end of an epoch)."""
    keep_checkpoints: Annotated[int, Field(ge=1)] = 2
    """How many of the newest checkpoints to keep."""
    log_every: Annotated[int, Field(ge=1)] = 10
    """Log loss, learning rate and throughput every N optimizer steps."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 20-30% slower."""
    compile: bool = False
    """Compile the model's repeated blocks (its transformer layers) with ``torch.compile``: faster steps
    after a warm-up of seconds to minutes. Not with quantised weights; on a CPU it needs a C++ compiler."""


# --------------------------------------------------------------------------- hardware


class HardwareSection(Section):
    """Where and how the job runs; executed through Accelerate."""

    accelerator: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Device type; ``auto`` takes CUDA, then MPS, then the CPU."""
    devices: Annotated[int, Field(ge=1)] = 1
    """Processes (devices) per node."""
    nodes: Annotated[int, Field(ge=1)] = 1
    """Machines in the job."""
    precision: Literal["auto", "fp32", "bf16-mixed", "fp16-mixed"] = "auto"
    """Numeric precision; ``auto`` is bf16-mixed where the device supports it, else fp32."""
    gpu: GpuName | None = None
    """The accelerator the job is meant for (``a100-80gb``, ``h100-80gb``, ``l4``, ...): `ftrecipe plan`
    takes the memory budget from it (unless ``memory`` is given) and estimates the training time."""
    memory: ByteSize | None = None
    """Per-device memory budget, e.g. ``24GiB`` (checked by `ftrecipe plan`); ``gpu``'s memory when omitted."""
    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    """Distributed strategy when more than one device is used."""
    zero_stage: Literal[1, 2, 3] = 2
    """DeepSpeed ZeRO stage (``strategy: deepspeed``)."""
    dataloader_workers: Annotated[int, Field(ge=0)] | None = None
    """Data-loading worker processes. Omitted: up to 8 per GPU; on a CPU one with 4+ cores per process,
    else none (there a worker would compete with the compute threads)."""


# --------------------------------------------------------------------------- evaluation / output


class GenerationSettings(Section):
    """Decoding settings for generation-based metrics (a building block: a generating modality adds
    ``generation: GenerationSettings`` to its own evaluation section)."""

    max_new_tokens: Annotated[int, Field(ge=1)] = 128
    num_beams: Annotated[int, Field(ge=1)] = 1
    """1 is greedy decoding."""


class EvaluationSection(Section):
    """How the model is measured before and after training."""

    metrics: list[str] | None = None
    """Metric names (see `ftrecipe plugins`); the modality's defaults when omitted."""
    before_training: bool = True
    """Also evaluate the base model before training, for ``eval_before`` in summary.json."""
    max_examples: Annotated[int, Field(ge=1)] | None = None
    """Evaluate on at most N examples (generation is slow)."""
    samples: Annotated[int, Field(ge=0)] = 8
    """How many predictions (worst first where a metric ranks them) are saved for people to read."""


class OutputSection(Section):
    """Where results go and which form the final model takes."""

    dir: str | None = None
    """Output directory, relative to the working directory; ``runs/<recipe name>`` when omitted."""
    save: Literal["adapter", "merged", "full"] | None = None
    """``adapter`` (PEFT adapter only), ``merged`` (adapter folded into the base) or ``full``;
    ``adapter`` for LoRA strategies and ``full`` otherwise when omitted."""


# --------------------------------------------------------------------------- tracking

TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow-skinny"),
    "wandb": ("wandb", "wandb"),
}
"""Experiment tracker -> (module it imports, the single distribution that provides it)."""

TRACKING_EXTRA = "pip install 'ftrecipe[tracking]'"


def library_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (validate stays fast and torch-free)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _tracker_installed(name: str) -> str:
    module, distribution = TRACKERS[name]
    if not library_installed(module):
        raise ValueError(f"{name} is not installed: {TRACKING_EXTRA} (or pip install {distribution})")
    return name


class MlflowSettings(Section):
    """Where MLflow keeps the run."""

    tracking_uri: str | None = None
    """MLflow tracking URI (``http(s)://`` server, ``databricks``, ``sqlite:///...``); a local file store in
    the run's folder (``mlruns/``) when omitted, so nothing leaves the machine unless written here."""


class WandbSettings(Section):
    """How Weights & Biases records the run."""

    mode: Literal["offline", "online"] = "offline"
    """``offline`` writes the run under the run's folder (``wandb/``; upload later with `wandb sync`);
    ``online`` streams it to the W&B server, and only then is anything sent."""
    entity: str | None = None
    """W&B team or user the run belongs to (online); your default entity when omitted."""


class TrackingSection(Section):
    """Experiment trackers that receive the run: the resolved recipe as parameters, the data report, step
    metrics, evaluations before, during and after training, the loss curve and sample images, and the
    saved model as an artifact (MLflow, W&B). Only the main process logs; ``--resume`` continues the same
    tracker runs."""

    backends: list[Annotated[Literal["tensorboard", "mlflow", "wandb"], AfterValidator(_tracker_installed)]] = \
        Field(default_factory=list)
    """Trackers to log to (each an optional extra: pip install 'ftrecipe[tracking]')."""
    project: str | None = None
    """Project (W&B) or experiment (MLflow) the run is filed under; the recipe's name when omitted."""
    run_name: str | None = None
    """The run's display name; the output folder's name when omitted."""
    tags: list[str] = Field(default_factory=list)
    """Tags on the run (ftrecipe adds the modality and the freeze strategy)."""
    artifacts: bool = True
    """Log the saved model folder as an artifact (MLflow, W&B); a local store keeps a copy of it."""
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    wandb: WandbSettings = Field(default_factory=WandbSettings)

    @field_validator("backends")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        repeated = sorted({name for i, name in enumerate(value) if name in value[:i]})
        if repeated:
            raise ValueError(f"backends repeat: {', '.join(repeated)}")
        return value


class RecipeBase(Section):
    """A complete recipe. :mod:`ftrecipe.schema` derives one subclass per modality."""

    name: str | None = None
    """Short name of the run; the file name when omitted."""
    description: str | None = None
    model: ModelSection
    freeze: FreezeSection = Field(default_factory=FreezeSection)
    head: HeadSection = Field(default_factory=HeadSection)
    data: DataSection
    training: TrainingSection = Field(default_factory=TrainingSection)
    hardware: HardwareSection = Field(default_factory=HardwareSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    output: OutputSection = Field(default_factory=OutputSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)

    @property
    def quantised_base(self) -> bool:
        """The frozen base loads 4- or 8-bit: ``model.quantization``, or ``freeze.strategy: qlora`` (which implies it)."""
        return self.model.quantization is not None or self.freeze.strategy == "qlora"

    @property
    def uses_bitsandbytes(self) -> bool:
        """bitsandbytes quantises the base or provides the optimizer: a run that needs it imported."""
        return self.quantised_base or self.training.optimizer in BITSANDBYTES_OPTIMIZERS
