"""torchtune's recipe configs (https://github.com/pytorch/torchtune, ``tune run RECIPE --config X``).

A torchtune config names builders by ``_component_``: the model builder decides the base (its hub id,
the one ``tune download`` fetches) and whether LoRA or QLoRA trains; the dataset builder decides the
data. Defaults come from the builders' signatures and the recipe's ``cfg.get(key, default)`` calls.
"""

from __future__ import annotations

from typing import Any

from ftrecipe.importing.common import NOT_A_TRACKER
from ftrecipe.importing.datasets import no_data
from ftrecipe.importing.table import (
    DEFAULT_DIFFERS,
    Append,
    NO_EQUIVALENT,
    OTHER_MEANING,
    Context,
    Default,
    Format,
    NotCarried,
    Nothing,
    Row,
    choice,
    nothing_if,
    same,
)

COMMIT = "bd2a0fc7c31430972728494fa01aaeeb0ebf1ba1"
REPO = f"https://github.com/pytorch/torchtune/blob/{COMMIT}"

MODELS = {
    "llama2.llama2_7b": ("meta-llama/Llama-2-7b-hf", 4096), "llama2.llama2_13b": ("meta-llama/Llama-2-13b-hf", 4096),
    "llama2.llama2_70b": ("meta-llama/Llama-2-70b-hf", 4096), "llama3.llama3_8b": ("meta-llama/Meta-Llama-3-8B", 8192),
    "llama3_1.llama3_1_8b": ("meta-llama/Llama-3.1-8B", 131072), "mistral.mistral_7b": ("mistralai/Mistral-7B-v0.1", 32768),
}
"""torchtune model builders (``torchtune.models.<family>.<name>``, with ``lora_`` / ``qlora_`` in front for the
adapters) -> the hub id of the weights its configs download, and the model's context length."""

DATASETS = {"alpaca_dataset": "tatsu-lab/alpaca", "alpaca_cleaned_dataset": "yahma/alpaca-cleaned"}
"""torchtune's alpaca builders -> their default hub source (instruction/input/output columns)."""

ATTN = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "output_proj": "o_proj"}
MLP = ["gate_proj", "up_proj", "down_proj"]
"""torchtune's LLaMA module names -> the Hugging Face model's, which the recipe's base loads."""


def _builder(path: Any) -> tuple[str, str, str | None, int | None]:
    """``torchtune.models.llama2.lora_llama2_7b`` -> (strategy, key, hub id, context length)."""
    parts = str(path).split(".")
    family, name = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", str(path))
    strategy = "qlora" if name.startswith("qlora_") else "lora" if name.startswith("lora_") else "full"
    key = f"{family}.{name.removeprefix('qlora_').removeprefix('lora_')}"
    hub, length = MODELS.get(key, (None, None))
    return strategy, key, hub, length


def _model(value: Any, ctx: Context) -> Any:
    """A known model builder -> model.base (its hub id) and freeze.strategy (lora_ / qlora_ in front)."""
    strategy, key, hub, _ = _builder(value)
    if hub is None:
        raise NotCarried(NO_EQUIVALENT, f"no hub id known here for torchtune's {key} builder (known: {', '.join(MODELS)})")
    return {"model.base": hub, "freeze.strategy": strategy}


def _targets(value: Any, ctx: Context) -> Any:
    """lora_attn_modules with apply_lora_to_mlp / apply_lora_to_output -> the Hugging Face module names."""
    model = ctx.source.get("model", {})
    names = []
    for name in model.get("lora_attn_modules") or []:
        if name not in ATTN:
            raise NotCarried(NO_EQUIVALENT, f"no Hugging Face module known for torchtune's {name}")
        names.append(ATTN[name])
    names += MLP if model.get("apply_lora_to_mlp") else []
    names += ["lm_head"] if model.get("apply_lora_to_output") else []
    return names


def _dataset(value: Any, ctx: Context) -> Any:
    """An alpaca builder -> the hub dataset it reads, form instruction."""
    name = str(value).rsplit(".", 1)[-1]
    if name not in DATASETS:
        raise NotCarried(NO_EQUIVALENT, f"no ftrecipe data source for torchtune's {name} (carried: {', '.join(DATASETS)})")
    train_on_input = ctx.source.get("dataset", {}).get("train_on_input", True)
    if train_on_input:
        ctx.drop("dataset.train_on_input", DEFAULT_DIFFERS,
                 "torchtune's alpaca builders compute the loss on the prompt too (train_on_input defaults to true); "
                 "ftrecipe computes it on completions only")
    source = ctx.source.get("dataset", {}).get("source", DATASETS[name])
    return {"data.format": "hf", "data.train": source, "data.form": "instruction"}


def _train_on_input(value: Any, ctx: Context) -> Any:
    """false is what ftrecipe does; true is not carried (reported with the dataset)."""
    return Nothing("ftrecipe computes the loss on completions only") if value is False else Nothing("see dataset")


def _checkpoint_dir(value: Any, ctx: Context) -> Any:
    """The local copy of the base: the recipe names its hub id instead."""
    ctx.note("checkpointer.checkpoint_dir", f"the recipe names the hub id of the weights; set model.base to {value} "
                                            "to read the local copy")
    return Nothing("the base's weights (model.base)")


def _save_adapter_only(value: Any, ctx: Context) -> Any:
    """true -> adapter; false -> merged (torchtune saves the merged weights, and the adapter too)."""
    if value is True:
        return "adapter"
    ctx.note("save_adapter_weights_only", "torchtune also saves the adapter alone beside the merged weights")
    return "merged"


def _dtype(value: Any, ctx: Context) -> Any:
    """bf16 -> weights in bfloat16 with bf16 autocast; fp32 -> fp32."""
    if value == "bf16":
        ctx.note("dtype", "torchtune trains purely in bf16; the recipe loads the weights in bf16 and runs bf16 autocast")
        return {"model.dtype": "bfloat16", "hardware.precision": "bf16-mixed"}
    if value == "fp32":
        return {"hardware.precision": "fp32"}
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe's precisions are fp32, bf16-mixed and fp16-mixed, not {value}")


def _profiler(value: Any, ctx: Context) -> Any:
    """Off: nothing to carry; on: not carried."""
    if isinstance(value, dict) and value.get("enabled") is False:
        return Nothing("the profiler is off")
    raise NotCarried(NO_EQUIVALENT, "ftrecipe has no profiler switch")


def _component(table: dict[str, Any], what: str) -> Any:
    def convert(value: Any, ctx: Context) -> Any:
        name = str(value).rsplit(".", 1)[-1]
        if name not in table:
            raise NotCarried(NO_EQUIVALENT, f"no ftrecipe {what} for {value} (carried: {', '.join(table)})")
        return table[name]
    convert.__doc__ = f"{what}: " + ", ".join(table)
    return convert


LOGGERS = {"WandBLogger": "wandb", "TensorBoardLogger": "tensorboard", "MLFlowLogger": "mlflow",
           "DiskLogger": None, "StdoutLogger": None}
"""torchtune.training.metric_logging's loggers -> the tracker (None: the run folder's metrics.jsonl and the console)."""
METRICS = f"{REPO}/torchtune/training/metric_logging.py"


def _logger(source: Any) -> str:
    """The metric logger's class name (DiskLogger where the config names none)."""
    return str((source.get("metric_logger") or {}).get("_component_", "DiskLogger")).rsplit(".", 1)[-1]


def _metric_logger(value: Any, ctx: Context) -> Any:
    """WandBLogger, TensorBoardLogger, MLFlowLogger -> tracking.backends; DiskLogger, StdoutLogger are ftrecipe's own log."""
    name = str(value).rsplit(".", 1)[-1]
    if name not in LOGGERS:
        raise NotCarried(NO_EQUIVALENT, f"{name}: {NOT_A_TRACKER}")
    tracker = LOGGERS[name]
    if tracker is None:
        return Nothing("ftrecipe writes every step's metrics to metrics.jsonl in the run folder, and to the console")
    if tracker == "tensorboard":
        return {"tracking.backends": Append(tracker)}
    return {"tracking.backends": Append(tracker), "tracking.artifacts": False}  # torchtune's loggers upload no model


def _for(*loggers: str, convert: Any = same) -> Any:
    """``convert`` for the keys of the given loggers; another logger takes no such argument."""

    def wrapped(value: Any, ctx: Context) -> Any:
        logger = _logger(ctx.source)
        if logger not in LOGGERS:
            raise NotCarried(NO_EQUIVALENT, f"an argument of torchtune's {logger}, which is not carried")
        if logger not in loggers:
            raise NotCarried(NO_EQUIVALENT, f"not an argument of torchtune's {logger}")
        return convert(value, ctx)

    wrapped.__doc__ = convert.__doc__
    return wrapped


def _wandb_mode(value: Any, ctx: Context) -> Any:
    """online, offline (wandb.init's mode)."""
    if str(value).lower() in ("online", "offline"):
        return str(value).lower()
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe's W&B modes are offline and online, not {value}")


def _uses_wandb(source: Any) -> bool:
    return _logger(source) == "WandBLogger"


def _is_lora(source: Any) -> bool:
    return _builder(source.get("model", {}).get("_component_", ""))[0] != "full"


def _context_length(source: Any) -> Any:
    return _builder(source.get("model", {}).get("_component_", ""))[3]


def _model_known(source: Any) -> bool:
    return _context_length(source) is not None


ROWS = (
    Row("model._component_", None, _model, "a known builder -> model.base (hub id) and freeze.strategy"),
    Row("model.lora_attn_modules", "freeze.lora.target_modules", _targets, "q/k/v/output_proj -> q/k/v/o_proj"),
    Row("model.apply_lora_to_mlp", "freeze.lora.target_modules", _targets, "true adds gate/up/down_proj"),
    Row("model.apply_lora_to_output", "freeze.lora.target_modules", _targets, "true adds lm_head"),
    Row("model.lora_rank", "freeze.lora.r", same, "adapter rank"),
    Row("model.lora_alpha", "freeze.lora.alpha", same, "scaling numerator"),
    Row("model.lora_dropout", "freeze.lora.dropout", same, "adapter dropout"),
    Row("model.quantize_base", None, nothing_if(False, "the base is not quantised", (OTHER_MEANING, "use the qlora_ "
                                                                                    "builder: freeze.strategy: qlora")),
        "false only (qlora_ builders decide)"),
    Row("tokenizer._component_", None, lambda value, ctx: Nothing("ftrecipe loads the base's own tokenizer"),
        "the base's own tokenizer"),
    Row("tokenizer.path", None, lambda value, ctx: Nothing("a local copy of the base's tokenizer"),
        "the base's own tokenizer"),
    Row("tokenizer.max_seq_len", "data.max_length", same, "tokens per example"),
    Row("checkpointer._component_", None, _component({"FullModelHFCheckpointer": Nothing("ftrecipe reads Hugging Face checkpoints")},
                                                     "checkpointer"), "FullModelHFCheckpointer only"),
    Row("checkpointer.checkpoint_dir", None, _checkpoint_dir, "the local copy of model.base"),
    Row("checkpointer.checkpoint_files", None, lambda value, ctx: Nothing("the base's weight files"), "the base's files"),
    Row("checkpointer.output_dir", None, lambda value, ctx: Nothing("output_dir decides"), "output_dir decides"),
    Row("checkpointer.model_type", None, lambda value, ctx: Nothing("the base's config names its type"), "from the base"),
    Row("output_dir", "output.dir", same, "where the run writes"),
    Row("resume_from_checkpoint", None, nothing_if(False, "a fresh run", (NO_EQUIVALENT, "resume with `ftrecipe run "
                                                                           "RECIPE --resume`")), "false only"),
    Row("save_adapter_weights_only", "output.save", _save_adapter_only, "true -> adapter, false -> merged"),
    Row("dataset._component_", None, _dataset, "alpaca builders -> their hub dataset, form instruction"),
    Row("dataset.source", None, lambda value, ctx: Nothing("read with dataset._component_"), "the hub dataset"),
    Row("dataset.train_on_input", None, _train_on_input, "false is ftrecipe's behaviour"),
    Row("dataset.packed", "data.packing", same, "pack examples"),
    Row("dataset.split", "data.train_split", same, "the split trained on"),
    Row("seed", "training.seed", same, "the run's seed"),
    Row("shuffle", None, nothing_if(True, "ftrecipe shuffles the training data", (NO_EQUIVALENT, "ftrecipe always "
                                                                                  "shuffles")), "true only"),
    Row("batch_size", "training.batch_size", same, "examples per micro-batch"),
    Row("optimizer._component_", "training.optimizer", _component({"AdamW": "adamw", "SGD": "sgd",
                                                                   "AdamW8bit": "adamw-8bit"}, "optimizer"),
        "torch.optim.AdamW -> adamw, SGD -> sgd, bitsandbytes AdamW8bit -> adamw-8bit"),
    Row("optimizer.lr", "training.learning_rate", lambda value, ctx: float(value), "peak learning rate"),
    Row("optimizer.weight_decay", "training.weight_decay", same, "decoupled weight decay"),
    Row("optimizer.betas", "training.adam_betas", same, "AdamW betas"),
    Row("optimizer.fused", None, lambda value, ctx: Nothing("a kernel choice, same arithmetic"), "a kernel choice"),
    Row("lr_scheduler._component_", "training.scheduler", _component({
        "get_cosine_schedule_with_warmup": "cosine", "get_linear_schedule_with_warmup": "linear"}, "schedule"),
        "cosine / linear with warm-up"),
    Row("lr_scheduler.num_warmup_steps", "training.warmup_steps", same, "warm-up steps"),
    Row("loss._component_", "training.loss", _component({"LinearCrossEntropyLoss": "chunked",
                                                         "CEWithChunkedOutputLoss": "chunked",
                                                         "CrossEntropyLoss": "standard"}, "loss"),
        "chunked cross-entropy -> chunked"),
    Row("epochs", "training.epochs", same, "passes over the data"),
    Row("max_steps_per_epoch", None, kind=OTHER_MEANING, how="a cap per epoch; ftrecipe's training.max_steps caps the run"),
    Row("gradient_accumulation_steps", "training.gradient_accumulation", same, "micro-batches per step"),
    Row("clip_grad_norm", "training.max_grad_norm", same, "gradient clipping"),
    Row("compile", "training.compile", same, "torch.compile"),
    Row("metric_logger._component_", None, _metric_logger,
        "WandBLogger -> wandb, TensorBoardLogger -> tensorboard, MLFlowLogger -> mlflow (no model upload, as torchtune); "
        "DiskLogger, StdoutLogger: ftrecipe's own metrics.jsonl"),
    Row("metric_logger.log_dir", None, lambda value, ctx: Nothing("ftrecipe writes the log and each tracker's files "
                                                                   "inside the run folder"), "inside the run folder"),
    Row("metric_logger.filename", None, lambda value, ctx: Nothing("ftrecipe's log is metrics.jsonl"), "metrics.jsonl"),
    Row("metric_logger.output_fmt", None, lambda value, ctx: Nothing("ftrecipe's log is metrics.jsonl"), "metrics.jsonl"),
    Row("metric_logger.organize_logs", None, _for("TensorBoardLogger", convert=lambda value, ctx: Nothing(
        "ftrecipe writes TensorBoard's events under tensorboard/<run name>/")), "a folder per run, as ftrecipe"),
    Row("metric_logger.project", "tracking.project", _for("WandBLogger"), "the W&B project"),
    Row("metric_logger.entity", "tracking.wandb.entity", _for("WandBLogger"), "the W&B team or user"),
    Row("metric_logger.name", "tracking.run_name", _for("WandBLogger"), "the run's name (wandb.init)"),
    Row("metric_logger.tags", "tracking.tags", _for("WandBLogger"), "the run's tags (wandb.init)"),
    Row("metric_logger.mode", "tracking.wandb.mode", _for("WandBLogger", convert=_wandb_mode), "online, offline"),
    Row("metric_logger.group", None, kind=NO_EQUIVALENT, how="ftrecipe does not group W&B runs"),
    Row("metric_logger.experiment_name", "tracking.project", _for("MLFlowLogger"), "the MLflow experiment"),
    Row("metric_logger.tracking_uri", "tracking.mlflow.tracking_uri", _for("MLFlowLogger"), "the MLflow server or store"),
    Row("metric_logger.run_name", "tracking.run_name", _for("MLFlowLogger"), "the run's name"),
    Row("metric_logger.run_id", None, kind=NO_EQUIVALENT,
        how="ftrecipe starts its own MLflow run, and --resume reopens it"),
    Row("log_every_n_steps", "training.log_every", same, "log every N steps"),
    Row("log_peak_memory_stats", None, kind=NO_EQUIVALENT, how="ftrecipe's log has no peak-memory switch"),
    Row("log_level", None, kind=NO_EQUIVALENT, how="ftrecipe run --quiet / --debug decide"),
    Row("device", "hardware.accelerator", choice({"cuda": "cuda", "cpu": "cpu", "mps": "mps"}, "device"), "cuda, cpu, mps"),
    Row("dtype", None, _dtype, "bf16 -> bfloat16 weights, bf16-mixed; fp32 -> fp32"),
    Row("enable_activation_checkpointing", "training.gradient_checkpointing", same, "recompute activations"),
    Row("enable_activation_offloading", None, nothing_if(False, "no offloading", (NO_EQUIVALENT, "ftrecipe does not "
                                                                                  "offload activations")), "false only"),
    Row("profiler", None, _profiler, "off only"),
)

DEFAULTS = (
    Default("freeze.lora.r", 8, "model.lora_rank", 8, 16,
            f"{REPO}/torchtune/models/llama2/_model_builders.py#L69", when=_is_lora),
    Default("freeze.lora.alpha", 16, "model.lora_alpha", 16, 32,
            f"{REPO}/torchtune/models/llama2/_model_builders.py#L70", when=_is_lora),
    Default("freeze.lora.dropout", 0.0, "model.lora_dropout", 0.0, 0.05,
            f"{REPO}/torchtune/models/llama2/_model_builders.py#L71", when=_is_lora),
    Default("training.max_grad_norm", None, "clip_grad_norm", "null (no clipping)", 1.0,
            f"{REPO}/recipes/lora_finetune_single_device.py#L174"),
    Default("data.packing", False, "dataset.packed", False, True, f"{REPO}/torchtune/datasets/_alpaca.py#L24"),
    Default("data.max_length", _context_length, "tokenizer.max_seq_len", "null: the model's context length", 1024,
            f"{REPO}/torchtune/models/llama2/_model_builders.py#L109", when=_model_known),
    Default("training.log_every", 1, "log_every_n_steps", 1, 10, f"{REPO}/recipes/lora_finetune_single_device.py#L150"),
    Default("tracking.project", "torchtune", "metric_logger.project", "torchtune", None, f"{METRICS}#L264",
            when=_uses_wandb, note="WandBLogger's project"),
    Default("tracking.wandb.mode", "online", "metric_logger.mode", "unset: W&B's own default, online", "offline",
            f"{METRICS}#L290-L296", when=_uses_wandb, note="WandBLogger hands wandb.init no mode unless the config does"),
)
"""torchtune's defaults that differ from ftrecipe's. Equal, pinned by the tests but not written: activation
checkpointing off (lora_finetune_single_device.py#L180-L182). Not expressible: the alpaca builders' loss on the
prompt (train_on_input: true, _alpaca.py#L23), reported as not carried over. W&B's own default mode, online: see
``common.WANDB_MODE``."""

FORMAT = Format(
    name="torchtune",
    tool="torchtune",
    what="a torchtune recipe config (recipes/configs/**/*.yaml)",
    rows=ROWS,
    defaults=DEFAULTS,
    skeleton={"model.modality": ("causal-lm", "torchtune's LoRA and full fine-tuning recipes train causal LMs")},
    finish=lambda ctx: no_data(ctx, "torchtune"),
)
