"""Cross-field checks: settings that are each valid but contradict one another.

They run after the schema accepted the recipe, each yields :class:`~ftrecipe.records.Problem`s
with the path of the key a person should change, and modalities add their own through
``Modality.checks``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from ftrecipe.hub import missing_pretrained
from ftrecipe.records import Problem
from ftrecipe.sections import BITSANDBYTES_OPTIMIZERS, RecipeBase

LORA_STRATEGIES = ("lora", "qlora")


def check_freeze(recipe: RecipeBase) -> Iterator[Problem]:
    freeze = recipe.freeze
    strategy = freeze.strategy
    if freeze.lora is not None and strategy not in LORA_STRATEGIES:
        yield Problem(("freeze", "lora"), f"LoRA settings need strategy lora or qlora, but strategy is {strategy}")
    if strategy == "full":
        for key in ("freeze", "freeze_layers", "train"):
            if getattr(freeze, key):
                yield Problem(("freeze", key), "strategy full trains every parameter; use strategy: partial to freeze some")
    if freeze.unfreeze_top and strategy != "transfer":
        yield Problem(("freeze", "unfreeze_top"), f"unfreeze_top applies to strategy transfer, not {strategy}")
    if strategy != "partial":
        for key in ("freeze", "freeze_layers"):
            if getattr(freeze, key) and strategy != "full":
                yield Problem(
                    ("freeze", key),
                    f"strategy {strategy} already freezes the pre-trained body; {key} applies to strategy partial",
                )


def check_quantization(recipe: RecipeBase) -> Iterator[Problem]:
    quantization = recipe.model.quantization
    strategy = recipe.freeze.strategy
    if quantization is None:
        return
    if strategy not in LORA_STRATEGIES:
        yield Problem(
            ("model", "quantization"),
            f"a quantised base cannot be trained directly (strategy {strategy}); use strategy lora or qlora",
        )
    if strategy == "qlora" and quantization.bits != 4:
        yield Problem(("model", "quantization", "bits"), "QLoRA trains on a 4-bit base; use bits: 4 or strategy lora")
    if recipe.hardware.accelerator == "mps":
        yield Problem(("hardware", "accelerator"), "bitsandbytes quantisation has no MPS backend; use cuda or cpu")


def check_precision(recipe: RecipeBase) -> Iterator[Problem]:
    hardware = recipe.hardware
    quantization = recipe.model.quantization
    compute = quantization.compute_dtype if quantization else "bfloat16"
    if recipe.quantised_base and hardware.precision == "fp32" and compute != "float32":
        yield Problem(
            ("hardware", "precision"),
            f"QLoRA computes in {compute} but precision is fp32; use bf16-mixed, or set "
            "model.quantization.compute_dtype: float32",
        )
    if hardware.precision == "fp16-mixed" and hardware.accelerator in ("cpu", "mps"):
        yield Problem(("hardware", "precision"), f"fp16-mixed needs CUDA; on {hardware.accelerator} use bf16-mixed or fp32")
    if hardware.strategy in ("deepspeed", "fsdp") and hardware.accelerator == "mps":
        yield Problem(("hardware", "strategy"), f"{'DeepSpeed' if hardware.strategy == 'deepspeed' else 'FSDP'} has no "
                                                "MPS backend; use ddp")
    if recipe.model.dtype == "float16" and hardware.accelerator == "cpu":
        yield Problem(("model", "dtype"), "float16 weights are not supported for training on the CPU; use bfloat16 or float32")


SHARDING = {"fsdp": "FSDP", "deepspeed": "DeepSpeed"}
"""The strategies that wrap or partition the model, by the name their messages use."""


def check_distribution(recipe: RecipeBase, strategies: tuple[str, ...]) -> Iterator[Problem]:
    """The strategy is one the modality supports (``Modality.strategies``), and FSDP is combined only
    with what the runner shards correctly."""
    hardware = recipe.hardware
    modality = recipe.model.modality
    if hardware.strategy not in strategies:
        yield Problem(("hardware", "strategy"),
                      f"{modality} supports strategy {' or '.join(strategies)}, not {hardware.strategy} "
                      "(the README's table lists what each modality supports)")
        return
    if hardware.strategy in SHARDING and recipe.training.compile:
        yield Problem(("training", "compile"), f"compiled layers have not been tested under {SHARDING[hardware.strategy]}; "
                                               "set compile: false or use strategy: ddp")
    if hardware.strategy == "deepspeed":
        yield from check_deepspeed(recipe)
    if hardware.strategy != "fsdp":
        return
    if recipe.quantised_base:
        yield Problem(("hardware", "strategy"),
                      "FSDP cannot shard a bitsandbytes-quantised base (its 4-bit storage would need a float storage "
                      "dtype); use strategy: ddp (each device holds the 4-bit base), or freeze.strategy: lora")
    if hardware.precision == "fp16-mixed":
        yield Problem(("hardware", "precision"), "FSDP here trains in bf16-mixed or fp32 (fp16 would need a "
                                                 "sharded gradient scaler); use bf16-mixed")


def check_deepspeed(recipe: RecipeBase) -> Iterator[Problem]:
    """DeepSpeed with what has been run under it: bf16-mixed or fp32, no 4-bit base under ZeRO-3."""
    hardware = recipe.hardware
    if recipe.quantised_base and hardware.zero_stage == 3:
        yield Problem(("hardware", "zero_stage"), "ZeRO-3 cannot partition a bitsandbytes-quantised base (its 4-bit "
                                                  "storage would need a float storage dtype); use zero_stage: 2, or "
                                                  "strategy: ddp")
    if hardware.precision == "fp16-mixed":
        yield Problem(("hardware", "precision"), "fp16 under DeepSpeed (its own loss scaler) has not been tested here; "
                                                 "use bf16-mixed")


def check_head(recipe: RecipeBase) -> Iterator[Problem]:
    head = recipe.head
    if head.mode == "keep":
        for key in ("labels", "num_labels"):
            if getattr(head, key) is not None:
                yield Problem(("head", key), f"{key} describes a new head; set head.mode to replace or append")
    elif head.labels is None and head.num_labels is None and not type(head).labels_from_data:
        yield Problem(("head", "mode"), f"head mode {head.mode} needs labels (or num_labels)")
    if head.labels is not None and head.num_labels is not None and len(head.labels) != head.num_labels:
        yield Problem(("head", "num_labels"), f"num_labels is {head.num_labels} but {len(head.labels)} labels are listed")


def check_training(recipe: RecipeBase) -> Iterator[Problem]:
    training = recipe.training
    if training.warmup_steps is not None and training.warmup_ratio is not None:
        yield Problem(("training", "warmup_ratio"), "give warmup_steps or warmup_ratio, not both")
    accelerator = recipe.hardware.accelerator
    if training.optimizer in BITSANDBYTES_OPTIMIZERS and accelerator == "mps":
        yield Problem(("training", "optimizer"), f"{training.optimizer} needs bitsandbytes, which has no MPS backend")
    if training.optimizer == "paged-adamw-8bit" and accelerator == "cpu":
        yield Problem(("training", "optimizer"), "paged-adamw-8bit pages its state through CUDA memory; on the CPU use adamw")
    if training.compile:
        if recipe.quantised_base:
            yield Problem(("training", "compile"), "torch.compile cannot trace bitsandbytes-quantised weights; "
                                                   "drop compile, or train a bf16 base (strategy lora)")
        if accelerator == "mps":
            yield Problem(("training", "compile"), "torch.compile has no training backend on MPS; use cuda or cpu")


def check_output(recipe: RecipeBase) -> Iterator[Problem]:
    save = recipe.output.save
    if save in ("adapter", "merged") and recipe.freeze.strategy not in LORA_STRATEGIES:
        yield Problem(("output", "save"), f"save: {save} needs a LoRA strategy; strategy is {recipe.freeze.strategy}")


CORE_CHECKS = (check_freeze, check_quantization, check_precision, check_head, check_training, check_output)


def pretrained_check(marker: str = "config.json", what: str = "model") -> Callable[[RecipeBase, Path], Iterator[Problem]]:
    """A ``Modality.run_checks`` entry for a base that is a Hugging Face repository or a local folder:
    with ``model.init: pretrained``, ``model.base`` (and ``model.tokenizer`` where the section has one)
    must be a path that exists, have ``marker`` in the Hugging Face cache, or be downloadable now.
    ``marker`` is a file every such repository has (``model_index.json`` for a Diffusers pipeline)."""

    def check(recipe: RecipeBase, base_dir: Path) -> Iterator[Problem]:
        model = recipe.model
        if getattr(model, "init", "pretrained") != "pretrained":
            return
        revision = getattr(model, "revision", None)
        sources = [(("model", "base"), model.base, marker, what)]
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer and tokenizer != model.base:
            sources.append((("model", "tokenizer"), tokenizer, "tokenizer_config.json", "tokenizer"))
        for key, source, file, kind in sources:
            if (why := missing_pretrained(source, revision=revision, marker=file, what=kind)) is not None:
                yield Problem(key, why)

    return check
