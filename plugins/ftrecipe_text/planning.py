"""What `ftrecipe plan` learns about a text recipe before any weight is downloaded.

The model is built on the meta device from its config alone, as ``build_model`` would build it
(head, dtype, vocabulary resize, Falcon's quantisable linear layers), so the plan counts what the run
trains. The config comes from a local directory, from the configs this plugin carries for well-known
bases (``configs/<org>--<name>.json``: the architecture fields of the hub's config.json), or from the
Hugging Face cache. The data is read and counted with the task's own rendering and tokenisation:
exactly, where the tokenizer is on this machine (a scratch model's BPE, a local directory, the
cache), else estimated at four characters a token.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ftrecipe.plugin import DataGuidance, DatasetSplits, PlanData, RecipeRuntimeError, find_config
from ftrecipe_text.loading import builds_from_config, family, load_tokenizer, quantisable_linear_layers, special_ids, weight_dtype
from ftrecipe_text.packing import check_packable
from ftrecipe_text.speed import causal_lm_of, install_hidden_state_loss
from ftrecipe_text.tiny import tiny_config
from ftrecipe_text.tokenization import tokenize_examples

if TYPE_CHECKING:
    from transformers import PretrainedConfig

CONFIGS = Path(__file__).with_name("configs")
#: Hub ids that name the same repository as a carried config (the hub redirects them).
ALIASES = {
    "google-bert/bert-base-uncased": "bert-base-uncased",
    "google-bert/bert-base-cased": "bert-base-cased",
    "google-bert/bert-large-uncased": "bert-large-uncased",
    "facebookai/roberta-base": "roberta-base",
    "distilbert/distilbert-base-uncased": "distilbert-base-uncased",
}
#: The seed's figures for causal-LM fine-tuning data, by model size.
LARGE_MODEL_PARAMETERS = 30e9
SMALL_MODEL_GUIDANCE = DataGuidance(1000, "examples", "the seed: LLaMA-2 7B needs about 1K examples")
LARGE_MODEL_GUIDANCE = DataGuidance(50_000, "examples", "the seed: Falcon 40B needs about 50K examples")
#: Special ids of a tiny tokenizer (train_bpe_tokenizer's order), for a scratch model whose data is not here.
NOMINAL_SPECIAL_IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


# -- configs --------------------------------------------------------------------------------------
def base_config(recipe: Any) -> PretrainedConfig:
    """The base's config: a local directory's config.json, a carried config, or the Hugging Face cache."""
    from transformers import CONFIG_MAPPING, AutoConfig

    model = recipe.model
    return find_config(model.base, load=AutoConfig.from_pretrained, carried=CONFIGS, aliases=ALIASES,
                       from_dict=lambda data: CONFIG_MAPPING[data["model_type"]].from_dict(data),
                       revision=model.revision, trust_remote_code=model.trust_remote_code)


def build_on_meta(auto_class: Any, config: Any, recipe: Any, *, dtype: torch.dtype | None, attn: str | None) -> torch.nn.Module:
    """``auto_class`` from ``config`` on the meta device; Falcon's linear layers as the quantiser sees them."""
    kwargs: dict[str, Any] = {"trust_remote_code": recipe.model.trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn is not None:
        kwargs["attn_implementation"] = attn
    quantised = recipe.model.quantization is not None
    swap = quantisable_linear_layers(config.model_type) if quantised else contextlib.nullcontext()
    with swap, torch.device("meta"):
        return auto_class.from_config(config, **kwargs)


# -- tokenizers -----------------------------------------------------------------------------------
class CharacterEstimate:
    """Stands in for a tokenizer that is not on this machine: a token per four characters, rounded up.

    It answers the calls the task's rendering and tokenisation make, so estimated counts go through
    the same truncation and skipping as exact ones.
    """

    pad_token_id, bos_token_id, eos_token_id = 0, None, 1
    chat_template = "estimate"

    def __call__(self, text: str | list[str], add_special_tokens: bool = True, truncation: bool = False,
                 max_length: int | None = None, **_: Any) -> dict[str, list]:
        if not isinstance(text, str):  # a batch, as a Hugging Face tokenizer takes one
            return {"input_ids": [self(one, add_special_tokens, truncation, max_length)["input_ids"] for one in text]}
        count = math.ceil(len(text) / 4)
        if truncation and max_length:
            count = min(count, max_length)
        return {"input_ids": [2] * count}

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False,
                            add_generation_prompt: bool = False, **_: Any) -> str:
        text = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return text + ("<|assistant|>\n" if add_generation_prompt else "")


def local_tokenizer(recipe: Any) -> Any | None:
    """The recipe's pretrained tokenizer if it is on this machine (a directory or the cache); never downloaded."""
    from transformers import AutoTokenizer

    model = recipe.model
    try:
        tokenizer = AutoTokenizer.from_pretrained(model.tokenizer or model.base, local_files_only=True, revision=model.revision,
                                                  trust_remote_code=model.trust_remote_code)
    except (OSError, ValueError, TypeError, ImportError):  # absent, or a folder without tokenizer files
        return None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@contextlib.contextmanager
def borrowed(task: Any, **values: Any) -> Iterator[None]:
    """Set task attributes for one call of the task's own data code, then put them back, so that a
    later ``build_data`` starts from a clean task."""
    saved = {name: getattr(task, name, None) for name in values}
    for name, value in values.items():
        setattr(task, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(task, name, value)


def separate_eval(data: Any) -> bool:
    """Evaluation examples come from their own source (files, a split, generated apart), not held out of train."""
    return data.eval is not None or getattr(data, "eval_split", None) is not None or data.format == "synthetic"


def estimate_warning(recipe: Any) -> str:
    source = recipe.model.tokenizer or recipe.model.base
    return (f"token counts are estimated at 4 characters a token: the tokenizer of '{source}' is not on this machine "
            "(not a local directory, not in the Hugging Face cache)")


def skipped_warning(skipped: dict[str, str]) -> list[str]:
    if not skipped:
        return []
    where, why = next(iter(skipped.items()))
    return [f"{len(skipped)} example(s) will be skipped, e.g. {where}: {why}"]


# -- the plans ------------------------------------------------------------------------------------
class TextPlan:
    """What the two text tasks share: the data read once, and the tokenizer as the run would have it."""

    nominal_vocab = 512
    """The size a scratch tokenizer is asked for (when the texts to train it are not here)."""

    def __init__(self, task: Any) -> None:
        self.task, self.recipe = task, task.recipe
        self.scratch = builds_from_config(task.recipe, task.ctx.smoke)

    @property
    def splits(self) -> DatasetSplits | None:
        """The format reader's rows, read once per task; None when they cannot be read here."""
        return self.task.plan_splits()

    @property
    def unavailable(self) -> str | None:
        return self.task.plan_unavailable

    @functools.cached_property
    def pretrained_tokenizer(self) -> Any | None:
        return local_tokenizer(self.recipe)

    def scratch_config(self, tokenizer: Any | None, **extra: Any) -> PretrainedConfig:
        """The tiny config ``from_config`` builds, with the tokenizer it would have trained (or its nominal size)."""
        overrides = {k: v for k, v in self.recipe.model.config.items() if k != "vocab_size"}
        if tokenizer is not None:
            vocab, ids = len(tokenizer), special_ids(tokenizer)
        else:
            vocab, ids = int(self.recipe.model.config.get("vocab_size", self.nominal_vocab)), NOMINAL_SPECIAL_IDS
        return tiny_config(family(self.recipe), vocab, **ids, **extra, **overrides)

    def build(self, auto_class: Any, config: Any) -> torch.nn.Module:
        """``build_model``'s dtype and attention: the recipe's weight dtype and attention, scratch or pretrained."""
        recipe = self.recipe
        attn = getattr(recipe.model, "attn_implementation", "auto")
        return build_on_meta(auto_class, config, recipe, dtype=weight_dtype(recipe), attn=None if attn == "auto" else attn)


@dataclass
class Rendered:
    """Training and evaluation pairs as ``build_data`` renders them, and the tokenizer that counts them."""

    train: list[tuple[str, str, Any]]
    evaluation: list[tuple[str, str, Any]]
    tokenizer: Any | None
    """The run's tokenizer; None where it is not on this machine (counts are then estimated)."""


class CausalLMPlan(TextPlan):
    """The causal-LM task's plan: ``max_length`` tokens a row, the loss on all of them."""

    @functools.cached_property
    def rendered(self) -> Rendered | None:
        """The rows rendered as ``build_data`` renders them (RecipeRuntimeError where it would stop)."""
        splits, data, smoke = self.splits, self.recipe.data, self.task.ctx.smoke
        if splits is None:
            return None
        if self.scratch:  # a chat template needs a tokenizer before the texts exist: build_data trains one on none
            tokenizer = load_tokenizer(self.recipe, [], smoke) if data.form == "chat" else None
        else:
            tokenizer = self.pretrained_tokenizer
        with borrowed(self.task, tokenizer=tokenizer if tokenizer is not None else CharacterEstimate()):
            train = self.task._render(list(splits.train), splits.report, "train")
            evaluation = self.task._render(list(splits.eval or []), splits.report, "eval")
        if splits.train and not train:
            first = next((f"{where}: {why}" for where, why in splits.report.skipped.items()), "")
            raise RecipeRuntimeError(("data", "columns"), f"no training example could be read: {first}")
        if self.scratch and tokenizer is None:
            tokenizer = load_tokenizer(self.recipe, [p + c for p, c, _ in train], smoke)
        return Rendered(train, evaluation, tokenizer)

    def model(self) -> torch.nn.Module:
        """The meta model; built once per plan (the data guidance's parameter count builds it first)."""
        built = self.__dict__.pop("_counted_model", None)
        return built if built is not None else self._build()

    def _build(self) -> torch.nn.Module:
        from transformers import AutoModelForCausalLM

        if self.scratch:
            try:
                rendered = self.rendered
            except RecipeRuntimeError:  # plan_data reports it; the model takes the tokenizer's nominal size
                rendered = None
            model = self.build(AutoModelForCausalLM, self.scratch_config(rendered.tokenizer if rendered else None))
        else:
            config = base_config(self.recipe)
            tokenizer = self.pretrained_tokenizer
            text_config = config.get_text_config()
            if tokenizer is not None and len(tokenizer) > text_config.vocab_size:  # build_model resizes the embeddings
                text_config.vocab_size = len(tokenizer)
            model = self.build(AutoModelForCausalLM, config)
        if self.recipe.data.packing:  # build_model refuses a model that packed examples would leak through
            check_packable(model)
        return model

    def forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        """``batch_size`` rows of ``max_length`` tokens with their labels: no mask, as packed rows train;
        the loss as ``training.loss`` makes it (``fused`` traced as ``chunked``: Liger's kernel keeps the
        same tensors; Liger's layer kernels are left out, their savings are small)."""
        if self.recipe.training.loss != "standard":
            install_hidden_state_loss(causal_lm_of(model), fused=False)
        ids = torch.zeros((batch_size, self.recipe.data.max_length), dtype=torch.long, device="meta")
        return model(input_ids=ids, labels=ids, use_cache=False).loss

    @functools.cached_property
    def parameters(self) -> int:
        self._counted_model = self._build()  # kept for model(): the plan measures the same build
        return sum(p.numel() for p in self._counted_model.parameters())

    def guidance(self) -> DataGuidance | None:
        """The seed's figure for the model's size; None when the model's config is not here."""
        try:
            parameters = self.parameters
        except RecipeRuntimeError:
            return None
        return LARGE_MODEL_GUIDANCE if parameters >= LARGE_MODEL_PARAMETERS else SMALL_MODEL_GUIDANCE

    def data(self) -> PlanData:
        guidance = self.guidance()
        try:
            rendered = self.rendered
        except RecipeRuntimeError as error:
            return PlanData(unavailable=error.message, guidance=guidance)
        if rendered is None:
            return PlanData(unavailable=self.unavailable, guidance=guidance)
        max_length, report = self.recipe.data.max_length, self.splits.report
        counter = rendered.tokenizer if rendered.tokenizer is not None else CharacterEstimate()
        try:
            tokenized = tokenize_examples(counter, [(p, c) for p, c, _ in rendered.train], max_length)
        except ValueError as error:  # no EOS token, or max_length shorter than the leading special tokens
            return PlanData(unavailable=str(error), guidance=guidance)
        examples = [e for e in tokenized.examples if e.num_loss_tokens > 0]
        tokens = sum(len(e) for e in examples)
        warnings = list(report.warnings) + skipped_warning(report.skipped)
        if rendered.tokenizer is None:
            warnings.append(estimate_warning(self.recipe))
        if tokenized.num_truncated:
            warnings.append(f"{tokenized.num_truncated} of {len(examples)} training examples are longer than "
                            f"data.max_length ({max_length} tokens) and are cut")
        overlap = None
        if separate_eval(self.recipe.data):
            seen = {(p, c) for p, c, _ in rendered.train}
            overlap = sum((p, c) in seen for p, c, _ in rendered.evaluation)
        return PlanData(train_examples=len(examples), eval_examples=len(rendered.evaluation),
                        amount={"tokens": float(tokens)},
                        mean_fill=tokens / (len(examples) * max_length) if examples else 1.0,
                        overlap=overlap, guidance=guidance, warnings=warnings)


class ClassificationPlan(TextPlan):
    """The classification task's plan: ``max_length`` tokens a text, one label each; no seed figure."""

    nominal_vocab = 256  # what build_data asks of a scratch tokenizer

    def labels(self) -> list[str]:
        """The head's labels as ``build_data`` finds them: the recipe's, else the data's."""
        head = self.recipe.head
        if head.labels:
            return list(head.labels)
        if self.splits is not None:
            return self.task._labels(list(self.splits.train))
        if head.num_labels:
            return [f"LABEL_{i}" for i in range(head.num_labels)]
        raise RecipeRuntimeError(("head", "labels"), f"the plan needs the labels, and the data cannot be read here "
                                                     f"({self.unavailable}): name them in head.labels")

    @functools.cached_property
    def scratch_tokenizer(self) -> Any | None:
        """The BPE ``build_data`` trains on the training texts (None when they cannot be read here)."""
        if self.splits is None:
            return None
        column = self.recipe.data.columns.get("text", "text")
        texts = [str(row.get(column, "")) for row in self.splits.train]
        return load_tokenizer(self.recipe, texts, self.task.ctx.smoke, vocab_size=self.nominal_vocab)

    def model(self) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification

        labels = self.labels()
        id2label, label2id = dict(enumerate(labels)), {name: i for i, name in enumerate(labels)}
        if self.scratch:
            config = self.scratch_config(self.scratch_tokenizer, num_labels=len(labels), id2label=id2label, label2id=label2id)
        else:  # replace: a fresh head for the recipe's labels, whatever head the checkpoint had
            config = base_config(self.recipe)
            config.num_labels = len(labels)
            config.id2label, config.label2id = id2label, label2id
        return self.build(AutoModelForSequenceClassification, config)

    def forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        """``batch_size`` texts of ``max_length`` tokens and their labels."""
        ids = torch.zeros((batch_size, self.recipe.data.max_length), dtype=torch.long, device="meta")
        labels = torch.zeros((batch_size,), dtype=torch.long, device="meta")
        return model(input_ids=ids, labels=labels).loss

    def data(self) -> PlanData:
        splits = self.splits
        if splits is None:
            return PlanData(unavailable=self.unavailable)
        data, report = self.recipe.data, splits.report
        try:
            labels = self.labels()
            tokenizer = self.scratch_tokenizer if self.scratch else self.pretrained_tokenizer
            counter = tokenizer if tokenizer is not None else CharacterEstimate()
            with borrowed(self.task, labels=labels, tokenizer=counter):
                train = self.task._encode(list(splits.train), report, "train")
                evaluation = self.task._encode(list(splits.eval or []), report, "eval")
        except RecipeRuntimeError as error:
            return PlanData(unavailable=error.message)
        if splits.train and not train:
            first = next(f"{where}: {why}" for where, why in report.skipped.items())
            return PlanData(unavailable=f"no training example could be read: {first}")
        tokens = sum(len(ids) for ids, _ in train)
        counts = Counter(label for _, label in train)
        warnings = list(report.warnings) + skipped_warning(report.skipped)
        if tokenizer is None:
            warnings.append(estimate_warning(self.recipe))
        return PlanData(train_examples=len(train), eval_examples=len(evaluation), amount={"tokens": float(tokens)},
                        balance={name: counts.get(i, 0) for i, name in enumerate(labels)},
                        mean_fill=tokens / (len(train) * data.max_length) if train else 1.0,
                        overlap=self.overlap(splits) if separate_eval(data) else None, guidance=None, warnings=warnings)

    def overlap(self, splits: DatasetSplits) -> int:
        """Evaluation texts that appear in training with the same label."""
        columns = self.recipe.data.columns
        text, label = columns.get("text", "text"), columns.get("label", "label")

        def key(row: Any) -> tuple[str, str] | None:
            value = row.get(text)
            return (value, str(row.get(label))) if isinstance(value, str) and value.strip() else None

        seen = {key(row) for row in splits.train} - {None}
        return sum(key(row) in seen for row in splits.eval or [])
