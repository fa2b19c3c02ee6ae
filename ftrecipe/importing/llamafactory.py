"""LLaMA-Factory's training YAML (https://github.com/hiyouga/LLaMA-Factory, ``llamafactory-cli train X.yaml``).

Its keys are its hparams dataclasses (``src/llamafactory/hparams/``) plus Transformers' TrainingArguments,
whose defaults apply where LLaMA-Factory sets none. Datasets are names in LLaMA-Factory's own
``data/dataset_info.json``; a key holding a path or a hub id is carried, a name is listed as not carried.
"""

from __future__ import annotations

from typing import Any

from ftrecipe.importing.common import INTEGRATIONS, NOT_A_TRACKER, SCHEDULER, TRACKERS, TRAINING_ARGS, WANDB_MODE, optimizer
from ftrecipe.importing.datasets import no_data, source_format
from ftrecipe.importing.table import (
    NO_EQUIVALENT,
    Append,
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

COMMIT = "000526908ae92cc1567130559f04a3436855e0cd"
HPARAMS = f"https://github.com/hiyouga/LLaMA-Factory/blob/{COMMIT}/src/llamafactory/hparams"


def _strategy(source: Any) -> str:
    kind = source.get("finetuning_type", "lora")
    return "qlora" if kind == "lora" and source.get("quantization_bit") == 4 else kind


def _is_lora(source: Any) -> bool:
    return source.get("finetuning_type", "lora") == "lora"


def _finetuning_type(value: Any, ctx: Context) -> Any:
    """lora -> lora (qlora with quantization_bit: 4), full -> full."""
    if value in ("lora", "full"):
        return _strategy(ctx.source)
    if value == "freeze":
        raise NotCarried(OTHER_MEANING, "LLaMA-Factory's freeze trains the last layers' chosen modules; ftrecipe's "
                                        "nearest is freeze.strategy: partial with freeze_layers (write it by hand)")
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe trains full weights, LoRA or QLoRA; no {value}")


def _quantization_bit(value: Any, ctx: Context) -> Any:
    """4 -> qlora (a 4-bit base under LoRA), 8 -> model.quantization.bits: 8."""
    if not _is_lora(ctx.source):
        raise NotCarried(NO_EQUIVALENT, "ftrecipe quantises the base only under LoRA")
    if value == 4:
        return Nothing("freeze.strategy: qlora loads the base in 4 bits")
    if value == 8:
        return {"model.quantization.bits": 8}
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe quantises to 4 or 8 bits, not {value}")


def _lora_target(value: Any, ctx: Context) -> Any:
    """all -> all-linear; a comma-separated list -> module names."""
    names = [part.strip() for part in str(value).split(",") if part.strip()]
    return "all-linear" if names == ["all"] else names


def _additional_target(value: Any, ctx: Context) -> Any:
    """Comma-separated module names -> globs trained and saved in full."""
    return [f"*{part.strip()}.*" for part in str(value).split(",") if part.strip()]


def _dataset(value: Any, ctx: Context) -> Any:
    """A local file or a hub id ``org/name`` -> data.format and data.train; a dataset_info.json name is not carried."""
    names = [part.strip() for part in str(value).split(",") if part.strip()]
    if len(names) == 1 and ("/" in names[0] or "." in names[0]):
        fmt, _ = source_format(names[0])
        ctx.note("dataset", "LLaMA-Factory reads it through dataset_info.json's column mapping; ftrecipe reads "
                            "instruction/input/output (alpaca) columns")
        return {"data.format": fmt, "data.train": names[0], "data.form": "instruction"}
    raise NotCarried(NO_EQUIVALENT, f"{', '.join(names)}: names in LLaMA-Factory's data/dataset_info.json, which "
                                    "ftrecipe does not read; point data.train at the file each names")


def _precision(value: Any, ctx: Context) -> Any:
    """bf16: true -> bf16-mixed; false -> fp32 unless fp16 is true."""
    if value is True:
        return "bf16-mixed"
    return Nothing("fp16: true decides") if ctx.source.get("fp16") is True else "fp32"


def _fp16(value: Any, ctx: Context) -> Any:
    """fp16: true -> fp16-mixed."""
    return "fp16-mixed" if value is True else Nothing("off; bf16 or the fp32 default decides")


def _packing(value: Any, ctx: Context) -> Any:
    """false -> false; true (with cross-attention between packed examples) is not carried."""
    if value is False:
        return False
    if ctx.source.get("neat_packing") is True:
        return Nothing("neat_packing decides")
    raise NotCarried(OTHER_MEANING, "LLaMA-Factory's packing lets packed examples attend to each other; ftrecipe "
                                    "packs without cross-attention (that is LLaMA-Factory's neat_packing)")


def _neat_packing(value: Any, ctx: Context) -> Any:
    """true -> data.packing: true (packing without cross-attention)."""
    return True if value is True else Nothing("off; packing decides")


def _eval_steps(value: Any, ctx: Context) -> Any:
    """An integer -> training.eval_every."""
    if isinstance(value, int) and ctx.source.get("eval_strategy", "steps") == "steps":
        return value
    raise NotCarried(OTHER_MEANING, "training.eval_every counts optimizer steps")


def _gradient_checkpointing(value: Any, ctx: Context) -> Any:
    """disable_gradient_checkpointing: true -> gradient_checkpointing: false."""
    return not value


def _reporters(source: Any) -> list[str]:
    """Transformers' report_to as a list: a name or a list of names; none is no tracker (training_args.py#L1594-L1601)."""
    value = source.get("report_to", "none")
    names = [value] if isinstance(value, str) else list(value or [])
    return [str(name).lower() for name in names if str(name).lower() != "none"]


def _reports_to(*trackers: str) -> Any:
    return lambda source: bool(set(_reporters(source)) & set(trackers))


def _report_to(value: Any, ctx: Context) -> Any:
    """none -> no tracker; tensorboard, mlflow, wandb -> tracking.backends; another reporter is not carried."""
    names = _reporters(ctx.source)
    if "all" in names:
        raise NotCarried(OTHER_MEANING, "every tracker installed where it runs; name the ones meant in tracking.backends")
    if not names:
        return Nothing("no tracker, as in a recipe without tracking")
    others = [name for name in names if name not in TRACKERS]
    carried = [name for name in names if name in TRACKERS]
    if not carried:
        raise NotCarried(NO_EQUIVALENT, f"{', '.join(others)}: {NOT_A_TRACKER}")
    if others:  # the trackers ftrecipe has are carried; the others are listed
        ctx.drop("report_to", NO_EQUIVALENT, f"{', '.join(others)}: {NOT_A_TRACKER}")
    return Append(*carried)


def _run_name(value: Any, ctx: Context) -> Any:
    """The run's name, for the trackers report_to names."""
    if not _reporters(ctx.source):
        return Nothing("report_to names no tracker: the name is unused")
    return str(value)


ROWS = (
    Row("model_name_or_path", "model.base", same, "hub id or local directory"),
    Row("model_revision", "model.revision", same, "hub revision"),
    Row("trust_remote_code", "model.trust_remote_code", same, "run the checkpoint's own code"),
    Row("flash_attn", "model.attn_implementation", choice({"auto": "auto", "disabled": "eager", "sdpa": "sdpa",
                                                           "fa2": "flash_attention_2"}, "attention"),
        "auto, disabled -> eager, sdpa, fa2 -> flash_attention_2"),
    Row("stage", None, nothing_if("sft", "ftrecipe's causal-lm modality fine-tunes on prompt/completion pairs",
                                  (NO_EQUIVALENT, "ftrecipe fine-tunes supervised (sft); no pt/rm/ppo/dpo/kto")),
        "sft only"),
    Row("do_train", None, nothing_if(True, "ftrecipe run trains", (NO_EQUIVALENT, "ftrecipe run always trains")),
        "true only"),
    Row("finetuning_type", "freeze.strategy", _finetuning_type, "lora (qlora with quantization_bit: 4), full"),
    Row("quantization_bit", None, _quantization_bit, "4 -> qlora, 8 -> model.quantization.bits: 8"),
    Row("quantization_type", "model.quantization.type", same, "nf4 or fp4"),
    Row("double_quantization", "model.quantization.double_quant", same, "quantise the constants too"),
    Row("lora_rank", "freeze.lora.r", same, "adapter rank"),
    Row("lora_alpha", "freeze.lora.alpha", same, "scaling numerator"),
    Row("lora_dropout", "freeze.lora.dropout", same, "adapter dropout"),
    Row("lora_target", "freeze.lora.target_modules", _lora_target, "all -> all-linear, or module names"),
    Row("additional_target", "freeze.train", _additional_target, "module names -> globs trained in full"),
    Row("use_dora", None, nothing_if(False, "plain LoRA", (NO_EQUIVALENT, "ftrecipe trains LoRA, not DoRA")), "false only"),
    Row("dataset", None, _dataset, "a local file or hub id; dataset_info.json names are not carried"),
    Row("dataset_dir", None, kind=NO_EQUIVALENT, how="ftrecipe does not read dataset_info.json"),
    Row("eval_dataset", None, kind=NO_EQUIVALENT, how="names in dataset_info.json, which ftrecipe does not read"),
    Row("template", None, kind=OTHER_MEANING,
        how="LLaMA-Factory's own prompt template; ftrecipe renders chats with the tokenizer's chat template "
            "(data.form: chat) and instructions with its alpaca-style prompt"),
    Row("cutoff_len", "data.max_length", same, "tokens per example"),
    Row("max_samples", "data.limit", same, "use the first N examples"),
    Row("val_size", "data.eval_fraction", same, "share held out (below 1)"),
    Row("train_on_prompt", None, nothing_if(False, "ftrecipe computes the loss on completions only",
                                            (NO_EQUIVALENT, "ftrecipe computes the loss on completions only")),
        "false is ftrecipe's behaviour; true is not carried"),
    Row("packing", "data.packing", _packing, "false; true (cross-attention between examples) is not carried"),
    Row("neat_packing", "data.packing", _neat_packing, "true -> packing without cross-attention"),
    Row("overwrite_cache", None, nothing_if((True, False), "ftrecipe keeps no tokenized cache", ("", "")),
        "ftrecipe keeps no tokenized cache"),
    Row("preprocessing_num_workers", None, kind=NO_EQUIVALENT, how="ftrecipe tokenizes on the fly"),
    Row("dataloader_num_workers", "hardware.dataloader_workers", same, "data-loading processes"),
    Row("output_dir", "output.dir", same, "where the run writes"),
    Row("logging_steps", "training.log_every", same, "log every N steps"),
    Row("save_steps", "training.checkpoint_every", same, "checkpoint every N steps"),
    Row("save_total_limit", "training.keep_checkpoints", same, "checkpoints kept"),
    Row("plot_loss", None, lambda value, ctx: Nothing("ftrecipe draws loss_curve.png in the run folder"),
        "ftrecipe draws loss_curve.png anyway"),
    Row("overwrite_output_dir", None, kind=NO_EQUIVALENT,
        how="ftrecipe never overwrites a run: a folder holding one continues only with --resume"),
    Row("save_only_model", None, nothing_if(False, "ftrecipe's checkpoints hold the optimizer state (for --resume)",
                                            (NO_EQUIVALENT, "ftrecipe's checkpoints always hold the optimizer state")),
        "false only"),
    Row("report_to", "tracking.backends", _report_to,
        "none -> no tracker; tensorboard, mlflow, wandb -> tracking.backends; others (swanlab, comet_ml, ...) not carried"),
    Row("run_name", "tracking.run_name", _run_name, "the run's name"),
    Row("use_swanlab", None, kind=NO_EQUIVALENT, how=f"SwanLab: {NOT_A_TRACKER}"),
    Row("per_device_train_batch_size", "training.batch_size", same, "examples per device per micro-batch"),
    Row("gradient_accumulation_steps", "training.gradient_accumulation", same, "micro-batches per step"),
    Row("learning_rate", "training.learning_rate", lambda value, ctx: float(value), "peak learning rate"),
    Row("num_train_epochs", "training.epochs", same, "passes over the data"),
    Row("max_steps", "training.max_steps", lambda value, ctx: value if value > 0 else Nothing("-1: no limit"),
        "optimizer steps (-1: none)"),
    Row("lr_scheduler_type", "training.scheduler", SCHEDULER, "the Transformers schedules ftrecipe has"),
    Row("warmup_ratio", "training.warmup_ratio", same, "warm-up share"),
    Row("warmup_steps", "training.warmup_steps", same, "warm-up steps"),
    Row("weight_decay", "training.weight_decay", same, "decoupled weight decay"),
    Row("max_grad_norm", "training.max_grad_norm", same, "gradient clipping"),
    Row("seed", "training.seed", same, "the run's seed"),
    Row("optim", "training.optimizer", optimizer, "Transformers' AdamW variants, sgd, adafactor"),
    Row("disable_gradient_checkpointing", "training.gradient_checkpointing", _gradient_checkpointing, "negated"),
    Row("bf16", "hardware.precision", _precision, "true -> bf16-mixed"),
    Row("fp16", "hardware.precision", _fp16, "true -> fp16-mixed"),
    Row("eval_strategy", None, nothing_if(("steps", "no"), "eval_steps decides", (OTHER_MEANING, "ftrecipe evaluates "
                                                                                  "every N steps")), "steps or no"),
    Row("eval_steps", "training.eval_every", _eval_steps, "an integer number of steps"),
    Row("per_device_eval_batch_size", None, kind=NO_EQUIVALENT, how="ftrecipe evaluates the loss in batches of 16"),
    Row("ddp_timeout", None, kind=NO_EQUIVALENT, how="Accelerate's default timeout"),
    Row("deepspeed", None, kind=OTHER_MEANING, how="a DeepSpeed JSON; ftrecipe takes hardware.strategy: deepspeed and zero_stage"),
    Row("resume_from_checkpoint", None, kind=NO_EQUIVALENT, how="resume with `ftrecipe run RECIPE --resume`"),
)

DEFAULTS = (
    Default("freeze.strategy", _strategy, "finetuning_type", "lora", "full", f"{HPARAMS}/finetuning_args.py#L464-L467",
            note="with quantization_bit: 4, qlora"),
    Default("freeze.lora.alpha", lambda source: 2 * int(source.get("lora_rank", 8)), "lora_alpha",
            "lora_rank * 2", 32, f"{HPARAMS}/finetuning_args.py#L534", when=_is_lora),
    Default("freeze.lora.r", 8, "lora_rank", 8, 16, f"{HPARAMS}/finetuning_args.py#L77-L80", when=_is_lora),
    Default("freeze.lora.dropout", 0.0, "lora_dropout", 0.0, 0.05, f"{HPARAMS}/finetuning_args.py#L73-L76",
            when=_is_lora),
    Default("data.max_length", 2048, "cutoff_len", 2048, 1024, f"{HPARAMS}/data_args.py#L46-L49"),
    Default("data.packing", False, "packing", "null: on for pt only", True, f"{HPARAMS}/parser.py#L462"),
    Default("data.eval_fraction", 0.0, "val_size", 0.0, 0.1, f"{HPARAMS}/data_args.py#L98-L101"),
    Default("training.gradient_checkpointing", True, "disable_gradient_checkpointing", False, False,
            f"{HPARAMS}/model_args.py#L144-L147"),
    Default("training.learning_rate", 5e-5, "learning_rate", 5e-5, 2e-5, f"{TRAINING_ARGS}#L787"),
    Default("training.epochs", 3.0, "num_train_epochs", 3.0, 1, f"{TRAINING_ARGS}#L778"),
    Default("training.log_every", 500, "logging_steps", 500, 10, f"{TRAINING_ARGS}#L1001-L1003"),
    Default("hardware.precision", "fp32", "bf16", False, "auto", f"{TRAINING_ARGS}#L874-L876",
            when=lambda source: source.get("fp16") is not True),
    Default("tracking.wandb.mode", "online", "WANDB_MODE", "unset: W&B's own default, online", "offline", WANDB_MODE,
            when=_reports_to("wandb"), note="with report_to: wandb; a LLaMA-Factory config has no mode key"),
    Default("tracking.project", "huggingface", "WANDB_PROJECT", "unset: huggingface", None, f"{INTEGRATIONS}#L763",
            when=_reports_to("wandb"), note="with report_to: wandb, the project Transformers' WandbCallback files runs in"),
    Default("tracking.artifacts", False, "WANDB_LOG_MODEL", "unset: false (HF_MLFLOW_LOG_ARTIFACTS too)", True,
            f"{INTEGRATIONS}#L709", when=_reports_to("wandb", "mlflow"),
            note="with report_to: wandb or mlflow, Transformers uploads no model unless told"),
)
"""LLaMA-Factory's (and Transformers' TrainingArguments') defaults that differ from ftrecipe's. Equal ones,
pinned by the tests but not written: loss on completions only (train_on_prompt: false, data_args.py#L50),
lora_target: all (finetuning_args.py#L81), the linear schedule (training_args.py#L788) without warm-up
(training_args.py#L798), batch size 8 (training_args.py#L777), no tracker (report_to: "none", training_args.py#L1059-L1064).
The W&B keys are Transformers' environment (a LLaMA-Factory config cannot set them): unset, W&B logs online
(wandb_settings.py) to the project huggingface and Transformers uploads no model."""

FORMAT = Format(
    name="llamafactory",
    tool="LLaMA-Factory",
    what="a LLaMA-Factory training YAML (examples/train_lora/*.yaml)",
    rows=ROWS,
    defaults=DEFAULTS,
    skeleton={"model.modality": ("causal-lm", "LLaMA-Factory's sft stage fine-tunes a causal language model")},
    finish=lambda ctx: no_data(ctx, "LLaMA-Factory"),
)
