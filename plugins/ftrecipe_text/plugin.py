"""Registration of the text plugin: causal-LM fine-tuning and text classification.

Torch-free: this module runs on every `ftrecipe validate`; the tasks import the heavy libraries.
"""

from __future__ import annotations

from importlib import resources

from ftrecipe.plugin import DatasetFormat, Metric, Modality, Problem, hookimpl, pretrained_check
from ftrecipe_text import sections as s

CAUSAL_LM = "causal-lm"
CLASSIFICATION = "text-classification"


def _starter(name: str) -> str:
    return resources.files("ftrecipe_text").joinpath("starters", name).read_text(encoding="utf-8")


def _check_causal_lm(recipe) -> list[Problem]:
    problems = []
    data = recipe.data
    if getattr(data, "form", None) == "chat" and data.format != "synthetic" and data.template:
        problems.append(Problem(("data", "template"), "form chat renders prompts with the chat template; drop template"))
    if getattr(recipe.training, "kernels", "none") == "liger" and recipe.quantised_base:
        problems.append(Problem(("training", "kernels"), "Liger's kernels are not measured on a quantised base yet "
                                                         "(bench/gpu_speed.sh measures LoRA); use kernels: none with QLoRA"))
    if getattr(recipe.training, "kernels", "none") == "liger" and recipe.training.compile:
        problems.append(Problem(("training", "compile"), "training.compile with training.kernels: liger fails on CUDA "
                                                         "(torch.compile cannot trace Liger's RMSNorm, Liger-Kernel issue 174, "
                                                         "seen after the model had loaded): keep one; the benchmark measured "
                                                         "liger without compile fastest"))
    if getattr(recipe.evaluation, "lm_eval", None) is not None:
        from ftrecipe_text.harness import INSTALL, installed

        if not installed():
            problems.append(Problem(("evaluation", "lm_eval"), f"needs EleutherAI's lm-eval harness, which is not installed: {INSTALL}"))
    return problems


def _check_classification(recipe) -> list[Problem]:
    if recipe.head.mode == "keep" and recipe.model.init == "pretrained":
        return [Problem(("head", "mode"), "a classifier needs a head with the recipe's labels: head.mode replace with labels")]
    if recipe.head.mode == "append":
        return [Problem(("head", "mode"), "text-classification puts a new classifier in place of the model's head; use head.mode replace")]
    return []


@hookimpl
def ftrecipe_modalities():
    return [
        Modality(
            name=CAUSAL_LM,
            section=s.CausalLMModel,
            task="ftrecipe_text.causal_lm:CausalLMTask",
            description="Supervised fine-tuning of causal language models (LLaMA, Falcon, any AutoModelForCausalLM).",
            default_metrics=("exact_match",),
            starter_recipe=_starter("causal-lm.yaml"),
            checks=(_check_causal_lm,),
            run_checks=(pretrained_check(),),
            sections={"evaluation": s.CausalLMEvaluation, "training": s.CausalLMTraining},
            ignores={"head": "a causal LM keeps its language-model head (for labels, use modality text-classification)"},
            strategies=("ddp", "fsdp", "deepspeed"),
        ),
        Modality(
            name=CLASSIFICATION,
            section=s.TextClassificationModel,
            task="ftrecipe_text.classification:ClassificationTask",
            description="Sequence classification: a pre-trained encoder or decoder with a new classifier head.",
            default_metrics=("accuracy", "f1"),
            starter_recipe=_starter("text-classification.yaml"),
            checks=(_check_classification,),
            run_checks=(pretrained_check(),),
            strategies=("ddp", "fsdp", "deepspeed"),
        ),
    ]


@hookimpl
def ftrecipe_dataset_formats():
    reader = "ftrecipe_text.readers:"
    lm = (CAUSAL_LM,)
    cls = (CLASSIFICATION,)
    files = ("train", "eval")
    generated = {"data.train": "the examples are generated (train_size)", "data.eval": "the examples are generated (eval_size)",
                 "data.eval_fraction": "evaluation examples are generated apart (eval_size)"}
    return [
        DatasetFormat("jsonl", lm, s.SftJsonl, reader + "read_files", "JSON Lines prompt/completion, instruction or chat records.",
                      required_paths=files),
        DatasetFormat("csv", lm, s.SftCsv, reader + "read_files", "CSV with a header row.", required_paths=files),
        DatasetFormat("parquet", lm, s.SftParquet, reader + "read_files", "Parquet files.", required_paths=files),
        DatasetFormat("hf", lm, s.SftHub, reader + "read_hf", "A Hugging Face datasets id or save_to_disk folder.",
                      ignores={"data.eval": "name the evaluation split with eval_split"}),
        DatasetFormat("synthetic", lm, s.SftSynthetic, reader + "read_synthetic_sql", "Template-made text-to-SQL pairs (offline).",
                      ignores=generated),
        DatasetFormat("sql-eval", lm, s.SqlEvalData, reader + "read_sql_eval", "defog sql-eval questions with gold SQL and table schemas.",
                      ignores={"data.train": "the questions come from root", "data.eval": "eval_fraction of the questions is held out"},
                      required_paths=("root",)),
        DatasetFormat("jsonl", cls, s.ClassificationJsonl, reader + "read_files", "JSON Lines text/label records.", required_paths=files),
        DatasetFormat("csv", cls, s.ClassificationCsv, reader + "read_files", "CSV text/label records.", required_paths=files),
        DatasetFormat("parquet", cls, s.ClassificationParquet, reader + "read_files", "Parquet text/label records.", required_paths=files),
        DatasetFormat("synthetic", cls, s.ClassificationSynthetic, reader + "read_synthetic_sentiment", "Template-made sentiment sentences (offline).",
                      ignores={**generated, "data.columns": "the generated columns are text and label"}),
    ]


@hookimpl
def ftrecipe_metrics():
    load = "ftrecipe_text.metrics:"
    return [
        Metric("exact_match", (CAUSAL_LM,), load + "load_exact_match", description="Generated text equals the reference (whitespace-stripped)."),
        Metric("exact_match_sql", (CAUSAL_LM,), load + "load_exact_match_sql", description="Exact match after SQL normalisation (case, spacing, trailing ';')."),
        Metric("accuracy", (CLASSIFICATION,), load + "load_accuracy", description="Share of correct labels."),
        Metric("f1", (CLASSIFICATION,), load + "load_f1", description="Macro-averaged F1 over the labels."),
    ]
