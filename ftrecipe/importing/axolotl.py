"""axolotl's YAML configs (https://github.com/axolotl-ai-cloud/axolotl): the table from its keys to recipe keys.

Keys and defaults follow axolotl's config schema (``src/axolotl/utils/schemas/``) at the commit cited in
:data:`COMMIT`; the tests pin each default written here against that citation.
"""

from __future__ import annotations

from typing import Any

from ftrecipe.importing.common import INTEGRATIONS, NOT_A_TRACKER, SCHEDULER, optimizer
from ftrecipe.importing.datasets import dataset_section, no_data
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

COMMIT = "067b021c8b87a9e5e380b9173c704cf7340e30f5"
SCHEMAS = f"https://github.com/axolotl-ai-cloud/axolotl/blob/{COMMIT}/src/axolotl/utils/schemas"
BUILDERS = f"https://github.com/axolotl-ai-cloud/axolotl/blob/{COMMIT}/src/axolotl/core/builders"
UTILS = f"https://github.com/axolotl-ai-cloud/axolotl/blob/{COMMIT}/src/axolotl/utils"

CAUSAL_LM_CLASSES = ("automodelforcausallm", "llamaforcausallm", "mistralforcausallm", "falconforcausallm",
                     "qwen2forcausallm", "gemmaforcausallm", "phiforcausallm")
TOKENIZER_CLASSES = ("autotokenizer", "llamatokenizer", "llamatokenizerfast", "codellamatokenizer", "gpt2tokenizer")

PEFT_DEFAULT_TARGETS = {"llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen": ["q_proj", "v_proj"],
                        "gemma": ["q_proj", "v_proj"], "falcon": ["query_key_value"]}
"""PEFT's per-architecture LoRA targets, used when an axolotl config names none (peft/utils/constants.py,
TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)."""


def _has_adapter(source: Any) -> bool:
    return source.get("adapter") in ("lora", "qlora")


def _model_class(value: Any, ctx: Context) -> Any:
    """Any causal-LM class: ftrecipe loads the base with AutoModelForCausalLM."""
    if str(value).lower() in CAUSAL_LM_CLASSES:
        return Nothing("ftrecipe's causal-lm modality loads every base with AutoModelForCausalLM")
    raise NotCarried(OTHER_MEANING, f"ftrecipe's causal-lm modality loads AutoModelForCausalLM, not {value}")


def _tokenizer_class(value: Any, ctx: Context) -> Any:
    """A standard tokenizer class: ftrecipe loads the base's tokenizer with AutoTokenizer."""
    if str(value).lower() in TOKENIZER_CLASSES:
        return Nothing("ftrecipe loads the tokenizer with AutoTokenizer, which picks the same class")
    raise NotCarried(OTHER_MEANING, f"ftrecipe loads the tokenizer with AutoTokenizer, not {value}")


def _adapter(value: Any, ctx: Context) -> Any:
    """lora -> lora, qlora -> qlora (a 4-bit NF4 base)."""
    if value in ("lora", "qlora"):
        return value
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe trains full weights, LoRA or QLoRA; no {value} adapter")


def _load_in_8bit(value: Any, ctx: Context) -> Any:
    """true -> model.quantization.bits: 8 (LLM.int8 base under LoRA)."""
    if value is True:
        if not _has_adapter(ctx.source):
            raise NotCarried(NO_EQUIVALENT, "ftrecipe quantises the base only under LoRA")
        return {"model.quantization.bits": 8}
    return Nothing("the base is not quantised to 8 bits, as in ftrecipe by default")


def _load_in_4bit(value: Any, ctx: Context) -> Any:
    """true -> a 4-bit NF4 base (what freeze.strategy: qlora loads)."""
    if value is True:
        if ctx.source.get("adapter") == "qlora":
            return Nothing("freeze.strategy: qlora loads the base in 4-bit NF4")
        if ctx.source.get("adapter") == "lora":
            return {"model.quantization.bits": 4}
        raise NotCarried(NO_EQUIVALENT, "ftrecipe quantises the base only under LoRA")
    return Nothing("the base is not quantised to 4 bits, as in ftrecipe by default")


def _target_linear(value: Any, ctx: Context) -> Any:
    """true -> all-linear."""
    if value is True:
        return "all-linear"
    return Nothing("false leaves the targets to lora_target_modules")


def _learning_rate(value: Any, ctx: Context) -> Any:
    """A number (axolotl also takes it as a string such as '2e-4')."""
    return float(value)


def _val_set_size(value: Any, ctx: Context) -> Any:
    """A fraction below 1 -> data.eval_fraction (axolotl reads 1 and more as a count of examples)."""
    if 0 <= float(value) < 1:
        return float(value)
    raise NotCarried(OTHER_MEANING, "a count of evaluation examples; ftrecipe holds out a fraction (data.eval_fraction)")


def _precision(value: Any, ctx: Context) -> Any:
    """bf16: true -> bf16-mixed, auto -> auto (bf16 where supported), false -> fp32 unless fp16 is true."""
    if ctx.source.get("fp16") is True and value is not True:
        return Nothing("fp16: true decides the precision")
    return {True: "bf16-mixed", "auto": "auto", False: "fp32", "full": "bf16-mixed"}[value]


def _fp16(value: Any, ctx: Context) -> Any:
    """true -> fp16-mixed."""
    if value is True:
        if ctx.source.get("bf16") is True:
            raise NotCarried(OTHER_MEANING, "bf16 and fp16 are both true; the recipe keeps bf16-mixed")
        return "fp16-mixed"
    return Nothing("fp16 is off; bf16 decides the precision")


def _attention(value: Any, ctx: Context) -> Any:
    """eager, sdpa, flash_attention_2 (flash / fa2 too); other kernels are not carried."""
    names = {"eager": "eager", "sdpa": "sdpa", "flash_attention_2": "flash_attention_2", "flash": "flash_attention_2",
             "fa2": "flash_attention_2"}
    if str(value).lower() in names:
        return names[str(value).lower()]
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe's attention kernels are eager, sdpa and flash_attention_2; the recipe keeps "
                                    f"auto (SDPA where it can) instead of {value}")


def _flag_attention(kernel: str) -> Any:
    def convert(value: Any, ctx: Context) -> Any:
        if value is True:
            return kernel
        return Nothing("off")
    convert.__doc__ = f"true -> {kernel}"
    return convert


def _betas(index: int) -> Any:
    def convert(value: Any, ctx: Context) -> Any:
        other = ctx.source.get("adam_beta2" if index == 0 else "adam_beta1")
        pair = [float(value), float(other if other is not None else (0.999 if index == 0 else 0.9))]
        return pair if index == 0 else [pair[1], pair[0]]
    convert.__doc__ = "with the other beta (Transformers' default 0.9 / 0.999 when absent)"
    return convert


def _modules_to_save(value: Any, ctx: Context) -> Any:
    """Module names -> parameter globs that train (and are saved) in full."""
    return [f"*{name}.*" for name in value]


def _saves_per_epoch(value: Any, ctx: Context) -> Any:
    """1: ftrecipe checkpoints at the end of each epoch anyway."""
    if value == 1:
        return Nothing("ftrecipe checkpoints at the end of every epoch")
    raise NotCarried(OTHER_MEANING, "ftrecipe counts checkpoints in optimizer steps (training.checkpoint_every); "
                                    "the steps in an epoch are known only once the data is read")


def _eval_steps(value: Any, ctx: Context) -> Any:
    """An integer -> training.eval_every (a fraction of all steps is not carried)."""
    if isinstance(value, int):
        return value
    raise NotCarried(OTHER_MEANING, "a fraction of all steps; training.eval_every counts optimizer steps")


def _datasets(value: Any, ctx: Context) -> Any:
    """The first dataset (or several local files of one type) -> data.format, train, form, columns."""
    return dataset_section(value, ctx, "datasets")


def _test_datasets(value: Any, ctx: Context) -> Any:
    """Local files -> data.eval."""
    return dataset_section(value, ctx, "test_datasets", eval_only=True)


def _finish(ctx: Context) -> None:
    """With an adapter and no target modules, PEFT's own per-architecture targets (axolotl's default)."""
    no_data(ctx, "axolotl")
    source = ctx.source
    if not _has_adapter(source):
        return
    for key, target, ours in (("lora_r", "r", 16), ("lora_alpha", "alpha", 32)):
        if source.get(key) is None:
            ctx.drop(key, DEFAULT_DIFFERS, f"axolotl has no default (None, handed to PEFT's LoraConfig as is: "
                                           f"{SCHEMAS}/peft.py#L53-L54); the recipe takes ftrecipe's {target}: {ours}")
    if "freeze.lora.target_modules" in ctx.values:
        return
    base = str(source.get("base_model", "")).lower()
    family = next((name for name in PEFT_DEFAULT_TARGETS if name in base), None)
    if family is None:
        ctx.drop("adapter", DEFAULT_DIFFERS, "the config names no target modules: axolotl leaves them to PEFT's "
                 "per-architecture default, unknown here for this base; ftrecipe's default all-linear is used")
        return
    ctx.values["freeze.lora.target_modules"] = (
        PEFT_DEFAULT_TARGETS[family], f"axolotl default where the config sets none: PEFT's targets for {family}")


# ---------------------------------------------------------------- trackers (utils/schemas/integrations.py)


def _wandb_on(source: Any) -> bool:
    """W&B logs: wandb_project set (utils/wandb_.py#L16-L18) or use_wandb: true, and wandb_mode not disabled."""
    on = bool(source.get("wandb_project")) or source.get("use_wandb") is True
    return on and str(source.get("wandb_mode") or "").lower() != "disabled"


def _mlflow_on(source: Any) -> bool:
    """MLflow logs: use_mlflow: true, or mlflow_experiment_name set (utils/mlflow_.py#L16-L18)."""
    return source.get("use_mlflow") is True or bool(source.get("mlflow_experiment_name"))


W_OFF = "W&B is off in this config (no wandb_project, or wandb_mode: disabled), as in a recipe without wandb"
M_OFF = "MLflow is off in this config (no use_mlflow or mlflow_experiment_name), as in a recipe without mlflow"


def _when(on: Any, off: str, convert: Any) -> Any:
    """``convert`` where the tracker logs; elsewhere the key changes nothing (read, nothing written)."""

    def wrapped(value: Any, ctx: Context) -> Any:
        return convert(value, ctx) if on(ctx.source) else Nothing(off)

    wrapped.__doc__ = convert.__doc__
    return wrapped


def _use_wandb(value: Any, ctx: Context) -> Any:
    """true -> wandb in tracking.backends."""
    if value is not True:
        return Nothing("wandb_project turns W&B on anyway (utils/wandb_.py#L16-L18)")
    return {"tracking.backends": Append("wandb")}


def _wandb_project(value: Any, ctx: Context) -> Any:
    """A project turns W&B on: wandb in tracking.backends, tracking.project."""
    return {"tracking.backends": Append("wandb"), "tracking.project": str(value)}


def _wandb_mode(value: Any, ctx: Context) -> Any:
    """online, offline (dryrun too); disabled turns W&B off."""
    mode = str(value).lower()
    if mode in ("online", "offline", "dryrun"):
        return "online" if mode == "online" else "offline"
    raise NotCarried(NO_EQUIVALENT, f"ftrecipe's W&B modes are offline and online, not {value}")


def _wandb_run_id(value: Any, ctx: Context) -> Any:
    """The run's name where wandb_name is unset (axolotl names the run by its id); the id itself is ftrecipe's."""
    if ctx.source.get("wandb_name"):
        raise NotCarried(NO_EQUIVALENT, "ftrecipe picks the W&B run id itself, and --resume reopens that run")
    ctx.note("wandb_run_id", "the run is named by it, as axolotl does without wandb_name "
                             "(utils/schemas/integrations.py#L84-L86); its id is ftrecipe's own, and --resume reopens it")
    return str(value)


def _wandb_watch(value: Any, ctx: Context) -> Any:
    """false only: gradient and parameter histograms (wandb.watch) are not carried."""
    if str(value).lower() == "false":
        return Nothing("no gradient or parameter histograms, as in ftrecipe")
    raise NotCarried(NO_EQUIVALENT, f"wandb.watch ({value}, Transformers' WANDB_WATCH): ftrecipe logs no gradient or "
                                    "parameter histograms")


def _log_model(value: Any, ctx: Context) -> Any:
    """end -> true; checkpoint -> true (the final model only); false -> false."""
    mode = str(value).lower()
    if mode == "end":
        return True
    if mode == "checkpoint":
        ctx.note("wandb_log_model", "W&B gets the saved model at the end of the run, not every checkpoint")
        return True
    if mode == "false":
        return False
    raise NotCarried(NO_EQUIVALENT, f"Transformers' WANDB_LOG_MODEL is end, checkpoint or false, not {value}")


def _switch(tracker: str, other: str) -> Any:
    def convert(value: Any, ctx: Context) -> Any:
        return {"tracking.backends": Append(tracker)} if value is True else Nothing(other)
    convert.__doc__ = f"true -> {tracker} in tracking.backends"
    return convert


def _mlflow_experiment(value: Any, ctx: Context) -> Any:
    """An experiment turns MLflow on: mlflow in tracking.backends, tracking.project (W&B's project where both are set)."""
    project = ctx.source.get("wandb_project")
    if _wandb_on(ctx.source) and project and str(project) != str(value):
        ctx.note("mlflow_experiment_name", f"the MLflow experiment is named {project} (wandb_project): a recipe has one "
                                           "tracking.project for every tracker")
        return {"tracking.backends": Append("mlflow")}
    return {"tracking.backends": Append("mlflow"), "tracking.project": str(value)}


def _mlflow_run_name(value: Any, ctx: Context) -> Any:
    """The run's name where W&B is off (axolotl names every run wandb_name when W&B is on)."""
    if _wandb_on(ctx.source):
        return Nothing("axolotl names the run wandb_name when W&B is on, MLflow's too (core/builders/base.py#L541-L544)")
    return {"tracking.run_name": str(value)}


def _mlflow_artifacts(value: Any, ctx: Context) -> Any:
    """true -> true (the final model, not each checkpoint); false -> false."""
    if value is True:
        ctx.note("hf_mlflow_log_artifacts", "MLflow gets the saved model at the end of the run, not every checkpoint")
    return bool(value)


TRACKING_ROWS = (
    Row("use_wandb", None, _when(_wandb_on, W_OFF, _use_wandb), "true -> wandb in tracking.backends"),
    Row("wandb_project", None, _when(_wandb_on, W_OFF, _wandb_project),
        "wandb in tracking.backends, tracking.project (W&B logs online unless wandb_mode says otherwise)"),
    Row("wandb_entity", "tracking.wandb.entity", _when(_wandb_on, W_OFF, same), "the W&B team or user"),
    Row("wandb_name", "tracking.run_name", _when(_wandb_on, W_OFF, same), "the run's name"),
    Row("wandb_mode", "tracking.wandb.mode", _when(_wandb_on, W_OFF, _wandb_mode),
        "online, offline (dryrun too); disabled turns W&B off"),
    Row("wandb_run_id", "tracking.run_name", _when(_wandb_on, W_OFF, _wandb_run_id),
        "the run's name where wandb_name is unset; the id itself is ftrecipe's (--resume reopens the run)"),
    Row("wandb_watch", None, _when(_wandb_on, W_OFF, _wandb_watch),
        "false only: ftrecipe logs no gradient or parameter histograms"),
    Row("wandb_log_model", "tracking.artifacts", _when(_wandb_on, W_OFF, _log_model),
        "end -> true, checkpoint -> true (the final model only), false -> false"),
    Row("use_tensorboard", None, _switch("tensorboard", "no TensorBoard, as in a recipe without it"),
        "true -> tensorboard in tracking.backends"),
    Row("use_mlflow", None, _switch("mlflow", "no MLflow unless mlflow_experiment_name turns it on"),
        "true -> mlflow in tracking.backends"),
    Row("mlflow_tracking_uri", "tracking.mlflow.tracking_uri", _when(_mlflow_on, M_OFF, same), "the MLflow server or store"),
    Row("mlflow_experiment_name", None, _mlflow_experiment, "mlflow in tracking.backends, tracking.project"),
    Row("mlflow_run_name", None, _when(_mlflow_on, M_OFF, _mlflow_run_name), "the run's name where W&B is off"),
    Row("hf_mlflow_log_artifacts", "tracking.artifacts", _when(_mlflow_on, M_OFF, _mlflow_artifacts),
        "true -> true (the final model, not each checkpoint), false -> false"),
    Row("use_comet", None, kind=NO_EQUIVALENT, how=f"Comet: {NOT_A_TRACKER}"),
    Row("use_trackio", None, kind=NO_EQUIVALENT, how=f"Trackio: {NOT_A_TRACKER}"),
)

ROWS = (
    Row("base_model", "model.base", same, "hub id or local directory"),
    Row("base_model_config", "model.tokenizer", same, "config and tokenizer from another repository: its tokenizer"),
    Row("tokenizer_config", "model.tokenizer", same, "tokenizer hub id or directory"),
    Row("revision_of_model", "model.revision", same, "hub revision"),
    Row("model_type", None, _model_class, "a causal-LM class is what ftrecipe loads; another is not carried"),
    Row("tokenizer_type", None, _tokenizer_class, "a standard tokenizer class is what AutoTokenizer loads"),
    Row("trust_remote_code", "model.trust_remote_code", same, "run the checkpoint's own code"),
    Row("attn_implementation", "model.attn_implementation", _attention, "eager, sdpa, flash_attention_2"),
    Row("flash_attention", "model.attn_implementation", _flag_attention("flash_attention_2"), "true -> flash_attention_2"),
    Row("sdp_attention", "model.attn_implementation", _flag_attention("sdpa"), "true -> sdpa"),
    Row("xformers_attention", None, kind=NO_EQUIVALENT, how="xformers is not one of ftrecipe's attention kernels"),
    Row("load_in_8bit", None, _load_in_8bit, "true -> model.quantization.bits: 8"),
    Row("load_in_4bit", None, _load_in_4bit, "true -> a 4-bit NF4 base"),
    Row("adapter", "freeze.strategy", _adapter, "lora -> lora, qlora -> qlora"),
    Row("lora_r", "freeze.lora.r", same, "adapter rank"),
    Row("lora_alpha", "freeze.lora.alpha", same, "scaling numerator"),
    Row("lora_dropout", "freeze.lora.dropout", same, "adapter dropout"),
    Row("lora_target_linear", "freeze.lora.target_modules", _target_linear, "true -> all-linear"),
    Row("lora_target_modules", "freeze.lora.target_modules", same, "module names"),
    Row("lora_modules_to_save", "freeze.train", _modules_to_save, "module names -> globs trained in full"),
    Row("lora_fan_in_fan_out", None, kind=NO_EQUIVALENT, how="PEFT infers it for Conv1D layers"),
    Row("lora_model_dir", None, kind=NO_EQUIVALENT, how="ftrecipe starts new adapters; it does not continue a saved one"),
    Row("peft_use_dora", None, kind=NO_EQUIVALENT, how="ftrecipe trains LoRA, not DoRA"),
    Row("datasets", None, _datasets, "path, type (alpaca, completion, chat_template), field names, split, name"),
    Row("test_datasets", None, _test_datasets, "local files -> data.eval"),
    Row("val_set_size", "data.eval_fraction", _val_set_size, "a fraction below 1"),
    Row("sequence_len", "data.max_length", same, "tokens per example"),
    Row("sample_packing", "data.packing", same, "pack examples into sequences"),
    Row("eval_sample_packing", None, nothing_if(False, "ftrecipe evaluates whole examples, padded",
                                                (NO_EQUIVALENT, "ftrecipe evaluates whole examples, padded, not packed")),
        "false is what ftrecipe does"),
    Row("pad_to_sequence_len", None, kind=NO_EQUIVALENT, how="ftrecipe pads each batch to its longest sequence"),
    Row("train_on_inputs", None, nothing_if(False, "ftrecipe computes the loss on completions only",
                                            (NO_EQUIVALENT, "ftrecipe computes the loss on completions only")),
        "false is ftrecipe's behaviour (loss on completions only); true is not carried"),
    Row("dataset_prepared_path", None, kind=NO_EQUIVALENT, how="ftrecipe tokenizes on the fly; no prepared-dataset cache"),
    Row("chat_template", None, nothing_if("tokenizer_default", "the tokenizer's own template, as ftrecipe uses",
                                          (NO_EQUIVALENT, "ftrecipe renders chats with the tokenizer's own chat template")),
        "tokenizer_default is ftrecipe's behaviour; a named template is not carried"),
    Row("special_tokens", None, kind=NO_EQUIVALENT, how="ftrecipe does not add tokens to the tokenizer"),
    Row("tokens", None, kind=NO_EQUIVALENT, how="ftrecipe does not add tokens to the tokenizer"),
    Row("micro_batch_size", "training.batch_size", same, "examples per device per micro-batch"),
    Row("gradient_accumulation_steps", "training.gradient_accumulation", same, "micro-batches per step"),
    Row("num_epochs", "training.epochs", same, "passes over the data"),
    Row("max_steps", "training.max_steps", same, "optimizer steps"),
    Row("optimizer", "training.optimizer", optimizer,
        "AdamW variants -> adamw / adamw-8bit / paged-adamw-8bit; paged_adamw_32bit -> adamw (not paged); sgd; adafactor"),
    Row("learning_rate", "training.learning_rate", _learning_rate, "peak learning rate"),
    Row("lr_scheduler", "training.scheduler", SCHEDULER, "the Transformers schedules ftrecipe has"),
    Row("lr_scheduler_kwargs", None, kind=NO_EQUIVALENT, how="ftrecipe's schedules take no extra arguments"),
    Row("warmup_steps", "training.warmup_steps", same, "warm-up in steps"),
    Row("warmup_ratio", "training.warmup_ratio", same, "warm-up as a share of all steps"),
    Row("weight_decay", "training.weight_decay", same, "decoupled weight decay"),
    Row("adam_beta1", "training.adam_betas", _betas(0), "with adam_beta2 -> adam_betas"),
    Row("adam_beta2", "training.adam_betas", _betas(1), "with adam_beta1 -> adam_betas"),
    Row("max_grad_norm", "training.max_grad_norm", same, "gradient clipping"),
    Row("seed", "training.seed", same, "the run's seed"),
    Row("gradient_checkpointing", "training.gradient_checkpointing", choice({True: True, False: False}, "switch"),
        "true / false"),
    Row("gradient_checkpointing_kwargs", None, kind=NO_EQUIVALENT, how="ftrecipe uses Transformers' checkpointing defaults"),
    Row("logging_steps", "training.log_every", same, "log every N steps"),
    Row("eval_steps", "training.eval_every", _eval_steps, "an integer number of steps"),
    Row("evals_per_epoch", None, kind=OTHER_MEANING,
        how="ftrecipe evaluates every N optimizer steps (training.eval_every) and at the end; an epoch's steps are "
            "known only once the data is read"),
    Row("save_steps", "training.checkpoint_every", same, "checkpoint every N steps"),
    Row("saves_per_epoch", None, _saves_per_epoch, "1 is what ftrecipe does (a checkpoint at each epoch's end)"),
    Row("save_total_limit", "training.keep_checkpoints", same, "checkpoints kept"),
    Row("bf16", "hardware.precision", _precision, "true -> bf16-mixed, auto -> auto, false -> fp32"),
    Row("fp16", "hardware.precision", _fp16, "true -> fp16-mixed"),
    Row("tf32", None, kind=NO_EQUIVALENT, how="ftrecipe leaves TF32 matmuls to PyTorch's setting"),
    Row("output_dir", "output.dir", same, "where the run writes"),
    Row("early_stopping_patience", None, kind=NO_EQUIVALENT, how="ftrecipe runs the steps it is given"),
    Row("resume_from_checkpoint", None, kind=NO_EQUIVALENT, how="resume with `ftrecipe run RECIPE --resume`"),
    Row("auto_resume_from_checkpoints", None, kind=NO_EQUIVALENT, how="resume with `ftrecipe run RECIPE --resume`"),
    Row("group_by_length", None, kind=NO_EQUIVALENT, how="ftrecipe packs instead of grouping by length"),
    Row("gptq", None, nothing_if(False, "no GPTQ base, as in ftrecipe", (NO_EQUIVALENT, "ftrecipe has no GPTQ bases")),
        "false only"),
    Row("strict", None, nothing_if((True, False), "ftrecipe always refuses unknown recipe keys", ("", "")),
        "ftrecipe always refuses unknown recipe keys"),
    Row("hub_model_id", None, kind=NO_EQUIVALENT, how="ftrecipe does not upload to the hub"),
    Row("push_dataset_to_hub", None, kind=NO_EQUIVALENT, how="ftrecipe does not upload to the hub"),
    *TRACKING_ROWS,
    Row("deepspeed", None, kind=OTHER_MEANING, how="a DeepSpeed JSON; ftrecipe takes hardware.strategy: deepspeed and zero_stage"),
    Row("fsdp", None, kind=OTHER_MEANING, how="axolotl's FSDP options; ftrecipe takes hardware.strategy: fsdp"),
    Row("fsdp_config", None, kind=OTHER_MEANING, how="axolotl's FSDP options; ftrecipe takes hardware.strategy: fsdp"),
)

DEFAULTS = (
    Default("training.scheduler", "cosine", "lr_scheduler", "cosine", "linear", f"{SCHEMAS}/training.py#L144"),
    Default("training.warmup_ratio", 0.03, "warmup_ratio", "0.03 of the steps, at most 100 steps", None,
            f"{BUILDERS}/base.py#L247-L250",
            when=lambda s: s.get("warmup_steps") is None),
    Default("freeze.lora.dropout", 0.0, "lora_dropout", 0.0, 0.05, f"{SCHEMAS}/peft.py#L80", when=_has_adapter),
    Default("data.packing", False, "sample_packing", "null (off)", True, f"{SCHEMAS}/config.py#L688-L693"),
    Default("data.max_length", 512, "sequence_len", 512, 1024, f"{SCHEMAS}/config.py#L665-L670"),
    Default("data.eval_fraction", 0.0, "val_set_size", 0.0, 0.1, f"{SCHEMAS}/config.py#L1084-L1089"),
    Default("training.batch_size", 1, "micro_batch_size", 1, 8, f"{SCHEMAS}/training.py#L77-L82"),
    Default("tracking.wandb.mode", "online", "wandb_mode", "null: W&B's own default, online", "offline",
            f"{UTILS}/wandb_.py#L8-L18", when=_wandb_on,
            note="W&B's own default: axolotl sets WANDB_MODE only from wandb_mode"),
    Default("tracking.artifacts", False, "wandb_log_model", "null: no model upload", True, f"{INTEGRATIONS}#L709",
            when=lambda s: _wandb_on(s) or _mlflow_on(s),
            note="Transformers' WANDB_LOG_MODEL and HF_MLFLOW_LOG_ARTIFACTS are both false unless set"),
)
"""axolotl's defaults that differ from ftrecipe's. Equal ones, pinned by the tests but not written: loss on
completions only (train_on_inputs: false, training.py#L103), precision (bf16: auto, config.py#L559), epochs (1.0,
training.py#L267), weight decay (0.0, training.py#L119-L121), optimizer (adamw_torch_fused, training.py#L122).
The W&B mode: axolotl exports only the wandb_* keys a config sets (utils/wandb_.py#L8-L18), so without wandb_mode W&B
runs in its own default mode, online (wandb_settings.py, cited in ``common.WANDB_MODE``), where ftrecipe's is offline."""

FORMAT = Format(
    name="axolotl",
    tool="axolotl",
    what="an axolotl YAML config (examples/*.yml)",
    rows=ROWS,
    defaults=DEFAULTS,
    skeleton={"model.modality": ("causal-lm", "axolotl fine-tunes causal language models")},
    finish=_finish,
)
