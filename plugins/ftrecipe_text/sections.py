"""Recipe sections the text plugin contributes (torch-free: imported by `ftrecipe validate`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ftrecipe.plugin import LOCAL_PATH, DataSection, EvaluationSection, GenerationSettings, ModelSection, Section, TrainingSection


class CausalLMModel(ModelSection):
    """A causal language model (LLaMA, Falcon, Mistral, ... any ``AutoModelForCausalLM``)."""

    modality: Literal["causal-lm"]
    tokenizer: Annotated[str | None, LOCAL_PATH] = None
    """Tokenizer hub id or directory, when it is not stored with the base model."""
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    """Attention kernel; ``auto`` lets Transformers choose (SDPA where it can). ``flash_attention_2`` needs
    CUDA and the ``flash-attn`` package; with packing, each packed batch is then one row without padding,
    read by its variable-length kernel."""


class CausalLMTraining(TrainingSection):
    """The optimisation loop's settings, with the causal LM's speed switches (each off by default)."""

    loss: Literal["standard", "chunked", "fused"] = "standard"
    """``standard``: the model's cross-entropy over its full logits (tokens x vocabulary, in fp32).
    ``chunked``: the cross-entropy from the final hidden states, a chunk of tokens at a time and only
    where the loss counts, so the full logits never exist (any device). ``fused``: the same, in
    Liger's fused Triton kernel (CUDA, ``pip install 'ftrecipe[gpu]'``)."""
    kernels: Literal["none", "liger"] = "none"
    """``liger``: Liger's fused RMSNorm, RoPE and SwiGLU kernels in the model's layers, applied after
    the LoRA wrap (CUDA, ``pip install 'ftrecipe[gpu]'``; LLaMA, Mistral, Qwen, Gemma, Phi-3 and more)."""
    speed: Literal["off", "auto"] = "off"
    """``auto``: the speed switches this recipe does not write are set to the fastest combination measured
    to work on the run's device with the libraries installed. On CUDA with liger-kernel: loss ``fused``
    and kernels ``liger`` (Liger's kernels not on a quantised base, a model type Liger lacks, or with
    ``compile``), packing as the data says (on by default); elsewhere nothing has been measured faster and
    nothing changes. The run log, ``run.json``, ``ftrecipe plan`` and ``diff`` show what it resolved to."""


class TextClassificationModel(ModelSection):
    """A sequence classifier: an encoder (BERT-style) or decoder with a classification head."""

    modality: Literal["text-classification"]
    tokenizer: Annotated[str | None, LOCAL_PATH] = None
    """Tokenizer hub id or directory, when it is not stored with the base model."""


class LmEvalSettings(Section):
    """Tasks of EleutherAI's lm-eval harness, run on the model at the evaluations before and after training
    (not at the periodic ones of ``training.eval_every``: a benchmark costs far more than the eval loss):
    a regression on general ability shows next to the fine-tune's gain.
    Needs ``pip install 'ftrecipe[lm-eval]'``. The task names are checked, and their datasets loaded, when
    the run starts (validate does not index the harness's thousands of task files)."""

    tasks: Annotated[list[str], Field(min_length=1)]
    """lm-eval task or group names (``hellaswag``, ``arc_easy``) or those of the YAMLs in ``include_path``."""
    limit: Annotated[int, Field(ge=1)] | None = None
    """At most N examples per task (all when omitted: the numbers lm-eval's leaderboards report)."""
    num_fewshot: Annotated[int, Field(ge=0)] | None = None
    """Few-shot examples in each prompt; each task's own default when omitted."""
    batch_size: Annotated[int, Field(ge=1)] = 8
    """Requests scored together."""
    include_path: Annotated[str | None, LOCAL_PATH] = None
    """A folder of your own task YAMLs, relative to the recipe; paths inside them (``data_files``) are read
    relative to this folder."""
    offline: bool = True
    """The tasks' datasets come from local files or the Hugging Face cache only; ``false`` lets the harness
    download them from the Hub."""


class CausalLMEvaluation(EvaluationSection):
    """How the model is measured before and after training: loss, and metrics on generated completions."""

    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    """Decoding of the completions that exact match scores."""
    lm_eval: LmEvalSettings | None = None
    """Also score the model on tasks of EleutherAI's lm-eval harness before and after training
    (``lm_eval/<task>/<metric>`` in the evaluation metrics; per task before, after and the change in
    summary.json's ``eval_report.lm_eval``; every metric in ``lm_eval.json`` in the run's folder)."""


class SftData(DataSection):
    """Supervised fine-tuning examples from files (one record per example)."""

    form: Literal["completion", "instruction", "chat"] = "completion"
    """``completion``: prompt/completion; ``instruction``: instruction/input/output; ``chat``: a
    ``messages`` list rendered with the tokenizer's chat template."""
    template: str | None = None
    """Prompt template with ``{column}`` placeholders, e.g. ``"{schema}\\n-- {question}\\n"``."""
    max_length: Annotated[int, Field(ge=8)] = 1024
    """Tokens per example; longer examples are truncated (prompt first) and counted."""
    packing: bool = True
    """Pack several examples into one sequence (without cross-attention) instead of padding."""


class SftJsonl(SftData):
    """JSON Lines file(s), one example object per line."""

    format: Literal["jsonl"]


class SftCsv(SftData):
    """CSV file(s) with a header row."""

    format: Literal["csv"]


class SftParquet(SftData):
    """Parquet file(s)."""

    format: Literal["parquet"]


class SftHub(SftData):
    """A Hugging Face ``datasets`` source: a dataset id (needs the hub) or a ``save_to_disk`` folder."""

    format: Literal["hf"]
    train_split: str = "train"
    eval_split: str | None = None
    subset: str | None = None


class SftSynthetic(SftData):
    """Template-made question/SQL pairs over a small schema, generated offline (demos, smoke tests)."""

    format: Literal["synthetic"]
    train_size: Annotated[int, Field(ge=1)] = 2000
    eval_size: Annotated[int, Field(ge=1)] = 64
    template: str | None = "-- schema: {schema}\n-- question: {question}\n-- sql: "
    columns: dict[str, str] = Field(default_factory=lambda: {"completion": "query"})
    """Map from the canonical column names to the generated ones (the SQL is in ``query``)."""


class SqlEvalData(SftData):
    """defog sql-eval (``questions_gen_postgres.csv``): question and gold SQL, with the full schema of
    the question's database (``metadata/<db_name>.json``) in the prompt."""

    format: Literal["sql-eval"]
    template: str | None = "-- schema: {schema}\n-- question: {question}\n-- sql: "
    columns: dict[str, str] = Field(default_factory=lambda: {"completion": "query"})
    """Map from the canonical column names to the generated ones (the SQL is in ``query``)."""
    root: Annotated[str, LOCAL_PATH]
    """The sql-eval folder (``questions_gen_postgres.csv`` and ``metadata/``), relative to the recipe."""


class ClassificationData(DataSection):
    """Labelled texts. Canonical columns: ``text`` and ``label`` (a label name or id)."""

    max_length: Annotated[int, Field(ge=8)] = 256
    """Tokens per text; longer texts are truncated and counted."""


class ClassificationJsonl(ClassificationData):
    format: Literal["jsonl"]


class ClassificationCsv(ClassificationData):
    format: Literal["csv"]


class ClassificationParquet(ClassificationData):
    format: Literal["parquet"]


class ClassificationSynthetic(ClassificationData):
    """Short template-made sentences with a sentiment label, generated offline."""

    format: Literal["synthetic"]
    train_size: Annotated[int, Field(ge=1)] = 1000
    eval_size: Annotated[int, Field(ge=1)] = 100


