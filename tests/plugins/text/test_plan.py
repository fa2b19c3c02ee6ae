"""`ftrecipe plan`'s hooks in the text plugin: the meta model is the one build_model builds (names, shapes,
dtypes), the meta forward pass runs and gives the loss, the data counts are build_data's, and the configs the
plugin carries are the real models'."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ftrecipe.plan.measure import forward_as_planned
from ftrecipe.plugin import RecipeRuntimeError, TaskContext, resolve
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_file
from tests.conftest import ROOT
from tests.plugins.text.test_runs import sft_recipe, tiny_checkpoint, write_jsonl

RECIPES = ROOT / "recipes"
LORA = "  strategy: lora\n  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n"
FALCON_LORA = "  strategy: lora\n  lora: {r: 4, alpha: 8, target_modules: [query_key_value]}\n"
TINY_LLAMA = "{hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 2}"


def task_of(recipe: Path, tmp: Path, *overrides: str):
    """The recipe's task, as the runner makes it."""
    result = validate_file(recipe, overrides=overrides)
    assert result.ok, [str(d) for d in result.diagnostics]
    registry = get_registry()
    task_class = resolve(registry.modalities[result.recipe.model.modality].task)
    return task_class(TaskContext(recipe=result.recipe, registry=registry, base_dir=result.base_dir,
                                  output_dir=tmp / "out", log=lambda message: None))


def signature(model: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype | None]]:
    """Parameter name -> (shape, dtype); a 4-bit weight by the shape it stands for (its dtype is the plan's to count)."""
    out = {}
    for name, param in model.named_parameters():
        quant = getattr(param, "quant_state", None)
        out[name] = (tuple(quant.shape), None) if quant is not None else (tuple(param.shape), param.dtype)
    return out


def assert_same(planned: torch.nn.Module, built: torch.nn.Module) -> None:
    """Same parameter names and shapes; same dtypes except where the run holds a 4-bit weight."""
    plan, run = signature(planned), signature(built)
    assert plan.keys() == run.keys()
    for name, (shape, dtype) in run.items():
        assert plan[name][0] == shape and dtype in (None, plan[name][1]), (name, plan[name], run[name])


def built_and_planned(recipe: Path, tmp: Path, *overrides: str) -> tuple[torch.nn.Module, torch.nn.Module, object, object]:
    run = task_of(recipe, tmp, *overrides)
    run.build_data()
    model = run.build_model()
    plan = task_of(recipe, tmp, *overrides)
    return model, plan.plan_model(), run, plan


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def falcon_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("falcon"), "falcon")


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("bert"), "bert")


def classifier_recipe(tmp: Path, base: Path, head: str = "head:\n  mode: replace\n  labels: [neg, pos, meh]\n",
                      eval_rows: list[dict] | None = None) -> Path:
    rows = [{"text": t, "label": l} for t, l in [("great movie", "pos"), ("awful service", "neg"), ("it was fine", "meh")] * 10]
    write_jsonl(tmp / "cls.jsonl", rows + [{"text": "", "label": "pos"}, {"text": "odd one", "label": "unknown"}])
    eval_part = ""
    if eval_rows is not None:
        write_jsonl(tmp / "cls-eval.jsonl", eval_rows)
        eval_part = "  eval: cls-eval.jsonl\n"
    recipe = tmp / "cls.yaml"
    recipe.write_text(
        f"model:\n  modality: text-classification\n  base: {base}\n"
        "freeze:\n  strategy: transfer\n" + head +
        f"data:\n  format: jsonl\n  train: cls.jsonl\n{eval_part}  max_length: 16\n"
        "training:\n  max_steps: 1\n  batch_size: 4\nhardware:\n  accelerator: cpu\n"
    )
    return recipe


def scratch_recipe(tmp: Path, family: str, config: str) -> Path:
    recipe = tmp / f"{family}-scratch.yaml"
    if family == "bert":
        recipe.write_text(
            f"model:\n  modality: text-classification\n  base: bert\n  init: scratch\n  config: {config}\n"
            "head:\n  mode: replace\n  labels: [negative, positive]\n"
            "data:\n  format: synthetic\n  train_size: 60\n  eval_size: 10\n  max_length: 24\n"
            "training:\n  max_steps: 1\nhardware:\n  accelerator: cpu\n"
        )
    else:
        recipe.write_text(
            f"model:\n  modality: causal-lm\n  base: {family}\n  init: scratch\n  config: {config}\n"
            "data:\n  format: synthetic\n  train_size: 80\n  eval_size: 8\n  max_length: 128\n"
            "training:\n  max_steps: 1\nhardware:\n  accelerator: cpu\n"
        )
    return recipe


def qlora(tmp: Path, base: Path) -> Path:
    recipe = sft_recipe(tmp, base, "  strategy: qlora\n")
    recipe.write_text(recipe.read_text().replace("precision: fp32", "precision: bf16-mixed"))
    return recipe


# -- the model -------------------------------------------------------------------------------------
CASES = {
    "llama-full": lambda tmp, d: sft_recipe(tmp, d["llama"], "  strategy: full\n"),
    "llama-lora": lambda tmp, d: sft_recipe(tmp, d["llama"], LORA),
    "llama-bf16-sdpa": lambda tmp, d: sft_recipe(tmp, d["llama"], LORA),  # with OVERRIDES
    "falcon-lora": lambda tmp, d: sft_recipe(tmp, d["falcon"], FALCON_LORA),
    "falcon-qlora": lambda tmp, d: qlora(tmp, d["falcon"]),
    "llama-qlora": lambda tmp, d: qlora(tmp, d["llama"]),
    "bert-transfer-new-head": lambda tmp, d: classifier_recipe(tmp, d["bert"]),
    "bert-labels-from-data": lambda tmp, d: classifier_recipe(tmp, d["bert"], "head:\n  mode: replace\n  num_labels: 4\n"),
    "llama-scratch": lambda tmp, d: scratch_recipe(tmp, "llama", TINY_LLAMA),
    "falcon-scratch": lambda tmp, d: scratch_recipe(tmp, "falcon", "{hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2}"),
    "llama-scratch-chat": lambda tmp, d: chat_recipe(tmp, "llama", scratch=True),
    "bert-scratch": lambda tmp, d: scratch_recipe(tmp, "bert", "{hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2}"),
}
OVERRIDES = {"llama-bf16-sdpa": ("model.dtype=bfloat16", "model.attn_implementation=sdpa")}


def chat_recipe(tmp: Path, base: str, scratch: bool = False) -> Path:
    import datasets

    messages = [[{"role": "user", "content": f"double {i}"}, {"role": "assistant", "content": str(2 * i)}] for i in range(20)]
    datasets.Dataset.from_dict({"messages": messages}).save_to_disk(str(tmp / "chats"))
    recipe = tmp / "chat.yaml"
    recipe.write_text(
        f"model:\n  modality: causal-lm\n  base: {base}\n" + (f"  init: scratch\n  config: {TINY_LLAMA}\n" if scratch else "")
        + "data:\n  format: hf\n  train: chats\n  form: chat\n  max_length: 64\n"
        "training:\n  max_steps: 2\n  batch_size: 4\nhardware:\n  accelerator: cpu\n"
    )
    return recipe


@pytest.fixture
def dirs(llama_dir, falcon_dir, bert_dir) -> dict:
    return {"llama": llama_dir, "falcon": falcon_dir, "bert": bert_dir}


@pytest.mark.parametrize("case", list(CASES))
def test_the_planned_model_is_the_built_model(case, tmp_path, dirs):
    """Same parameter names, shapes and dtypes (a 4-bit base: the shapes it stands for), on the meta device."""
    recipe = CASES[case](tmp_path, dirs)
    built, planned, _, plan = built_and_planned(recipe, tmp_path, *OVERRIDES.get(case, ()))
    assert all(p.device.type == "meta" for p in planned.parameters())
    assert_same(planned, built)
    assert type(planned) is type(built) and planned.config._attn_implementation == built.config._attn_implementation
    if plan.recipe.model.quantization is not None:  # every layer the run quantises is a plain nn.Linear in the plan
        import bitsandbytes as bnb

        quantised = [n for n, m in built.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert quantised and all(type(planned.get_submodule(n)) is torch.nn.Linear for n in quantised)


@pytest.mark.parametrize("case", ["llama-lora", "falcon-lora", "bert-transfer-new-head", "llama-full"])
def test_the_planned_freeze_trains_what_the_run_trains(case, tmp_path, dirs):
    recipe = CASES[case](tmp_path, dirs)
    built, planned, run, plan = built_and_planned(recipe, tmp_path)
    built, built_report = run.plan_freeze(built)  # the common loop's freeze, on the real model
    planned, planned_report = plan.plan_freeze(planned)
    assert planned_report.as_dict() == built_report.as_dict()
    assert {n for n, p in planned.named_parameters() if p.requires_grad} == {n for n, p in built.named_parameters() if p.requires_grad}


def test_a_tokenizer_larger_than_the_embeddings_resizes_the_planned_model_too(tmp_path, llama_dir):
    base = tmp_path / "grown"
    shutil.copytree(llama_dir, base)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.add_tokens(["<extra_1>", "<extra_2>", "<extra_3>"])
    tokenizer.save_pretrained(base)
    built, planned, _, _ = built_and_planned(sft_recipe(tmp_path, base, "  strategy: full\n"), tmp_path)
    assert signature(planned) == signature(built)
    assert planned.get_input_embeddings().num_embeddings == len(tokenizer)


def test_a_base_in_the_hugging_face_cache_plans_from_there(tmp_path, llama_dir):
    """No directory, no carried config: the cache's config (and tokenizer: exact token counts)."""
    from huggingface_hub import constants

    commit = "0" * 40
    repo = Path(constants.HF_HUB_CACHE) / "models--acme--tiny-llama"
    shutil.copytree(llama_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    try:
        recipe = sft_recipe(tmp_path, "acme/tiny-llama", "  strategy: full\n")
        built, planned, _, plan = built_and_planned(recipe, tmp_path)
        assert signature(planned) == signature(built)
        unpacked = task_of(recipe, tmp_path, "data.packing=false").build_data().train
        data = plan.plan_data()
        assert data.amount["tokens"] == sum(len(e) for e in unpacked)
        assert not any("estimated" in w for w in data.warnings)
    finally:
        shutil.rmtree(repo)


def test_a_model_that_packing_cannot_separate_is_refused_as_build_model_does(tmp_path):
    base = tiny_checkpoint(tmp_path / "alibi", "falcon", alibi=True)
    task = task_of(sft_recipe(tmp_path, base, "  strategy: full\n"), tmp_path)
    with pytest.raises(RecipeRuntimeError, match="ALiBi") as caught:
        task.plan_model()
    assert caught.value.path == ("data", "packing")
    assert task_of(sft_recipe(tmp_path, base, "  strategy: full\n"), tmp_path, "data.packing=false").plan_model()


@pytest.mark.parametrize("base", ["acme/no-such-model", "./nowhere/model"])
def test_a_base_with_no_config_anywhere_is_a_located_error(tmp_path, base):
    recipe = sft_recipe(tmp_path, base, "  strategy: full\n")
    task = task_of(recipe, tmp_path)
    with pytest.raises(RecipeRuntimeError) as caught:
        task.plan_model()
    assert caught.value.path == ("model", "base")
    assert f"no config for '{base}' here" in caught.value.message
    if "/" in base and not base.startswith("."):
        assert "config.json" in caught.value.message and "Hugging Face cache" in caught.value.message
    assert task.plan_data().guidance is None  # the data is still counted, without a seed figure
    assert (task.plan_data().train_examples, task.plan_data().eval_examples) == (22, 2)


def test_a_directory_without_a_config_is_a_located_error(tmp_path):
    (tmp_path / "empty").mkdir()
    task = task_of(sft_recipe(tmp_path, tmp_path / "empty", "  strategy: full\n"), tmp_path)
    with pytest.raises(RecipeRuntimeError, match="holds no config.json") as caught:
        task.plan_model()
    assert caught.value.path == ("model", "base")


# -- the forward pass ------------------------------------------------------------------------------
def frozen_for_training(task) -> torch.nn.Module:
    """What the core hands plan_forward: the meta model, frozen (PEFT-wrapped for LoRA), in training mode."""
    model, _ = task.plan_freeze(task.plan_model())
    return model.train()


@pytest.mark.parametrize("case", list(CASES))
def test_the_forward_pass_runs_on_meta_with_a_loss(case, tmp_path, dirs):
    task = task_of(CASES[case](tmp_path, dirs), tmp_path, *OVERRIDES.get(case, ()))
    loss = forward_as_planned(task, frozen_for_training(task), 2)
    assert loss.device.type == "meta" and loss.shape == ()


@pytest.mark.parametrize("recipe, overrides", [
    ("llama2-7b-sql-qlora.yaml", ()),
    ("falcon-40b-qlora.yaml", ()),
    ("bert-tweet-sentiment.yaml", ()),
    ("llama2-7b-sql-qlora.yaml", ("model.base=mistralai/Mistral-7B-v0.1", "data.max_length=8192")),  # sliding window
])
def test_the_forward_pass_of_the_carried_bases_runs_on_meta(recipe, overrides, tmp_path):
    task = task_of(RECIPES / recipe, tmp_path, *overrides)
    loss = forward_as_planned(task, frozen_for_training(task), 1)
    assert loss.device.type == "meta" and loss.shape == ()


@pytest.mark.parametrize("case", ["llama-full", "falcon-lora", "bert-transfer-new-head"])
def test_checkpoint_units_are_the_layers_gradient_checkpointing_wraps(case, tmp_path, dirs):
    from transformers.modeling_layers import GradientCheckpointingLayer

    task = task_of(CASES[case](tmp_path, dirs), tmp_path)
    model = frozen_for_training(task)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, GradientCheckpointingLayer)]
    assert wrapped and task.plan_checkpoint_units(model) == wrapped


# -- the data --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["llama-full", "llama-scratch", "falcon-scratch", "llama-scratch-chat", "bert-scratch"])
def test_the_data_counts_are_build_datas(case, tmp_path, dirs):
    recipe = CASES[case](tmp_path, dirs)
    run = task_of(recipe, tmp_path, "data.packing=false") if "bert" not in case else task_of(recipe, tmp_path)
    bundle = run.build_data()
    plan = task_of(recipe, tmp_path)
    data = plan.plan_data()
    assert (data.train_examples, data.eval_examples) == (bundle.report.train_examples, bundle.report.eval_examples)
    lengths = [len(e) for e in bundle.train] if "bert" not in case else [len(ids) for ids, _ in bundle.train]
    assert data.amount["tokens"] == sum(lengths)  # exact: the tokenizer is on this machine
    assert data.mean_fill == pytest.approx(sum(lengths) / (len(lengths) * plan.recipe.data.max_length))
    assert not any("estimated" in w for w in data.warnings)


def test_chat_data_from_a_datasets_folder(tmp_path, llama_dir):
    recipe = chat_recipe(tmp_path, str(llama_dir))
    bundle = task_of(recipe, tmp_path).build_data()
    data = task_of(recipe, tmp_path).plan_data()
    assert (data.train_examples, data.eval_examples) == (bundle.report.train_examples, bundle.report.eval_examples) == (18, 2)
    assert data.overlap is None  # held out of the same source: nothing to compare


def test_classification_counts_labels_and_skips_like_build_data(tmp_path, bert_dir):
    eval_rows = [{"text": "great movie", "label": "pos"}, {"text": "awful service", "label": "neg"}, {"text": "new text", "label": "meh"}]
    recipe = classifier_recipe(tmp_path, bert_dir, eval_rows=eval_rows)
    run = task_of(recipe, tmp_path)
    bundle = run.build_data()
    data = task_of(recipe, tmp_path).plan_data()
    assert (data.train_examples, data.eval_examples) == (bundle.report.train_examples, bundle.report.eval_examples) == (30, 3)
    assert data.balance == {"neg": 10, "pos": 10, "meh": 10}
    assert data.amount["tokens"] == sum(len(ids) for ids, _ in bundle.train)
    assert data.overlap == 2 and data.guidance is None
    assert any("2 example(s) will be skipped" in w for w in data.warnings)


def test_overlap_of_a_separate_evaluation_file(tmp_path, llama_dir):
    recipe = sft_recipe(tmp_path, llama_dir, "  strategy: full\n")
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    write_jsonl(tmp_path / "eval.jsonl", train[:3] + [{"q": "who earns over 99 in ops?", "a": "select 1;"}])
    recipe.write_text(recipe.read_text().replace("  train: train.jsonl\n", "  train: train.jsonl\n  eval: eval.jsonl\n"))
    data = task_of(recipe, tmp_path).plan_data()
    assert (data.train_examples, data.eval_examples, data.overlap) == (24, 4, 3)


def test_without_a_tokenizer_the_tokens_are_estimated_and_said_so(tmp_path):
    task = task_of(RECIPES / "llama2-7b-sql-qlora.yaml", tmp_path)
    data = task.plan_data()
    assert (data.train_examples, data.eval_examples) == (178, 32)  # 210 sql-eval questions, 15% held out
    assert any("estimated at 4 characters a token" in w and "meta-llama/Llama-2-7b-hf" in w for w in data.warnings)
    assert 0 < data.mean_fill <= 1 and data.amount["tokens"] > 178 * 100


@pytest.mark.parametrize("recipe, minimum, source", [
    ("llama2-7b-sql-qlora.yaml", 1000, "LLaMA-2 7B needs about 1K examples"),
    ("falcon-40b-qlora.yaml", 50_000, "Falcon 40B needs about 50K examples"),
    ("demo/llama.yaml", 1000, "LLaMA-2 7B"),
])
def test_the_seed_figure_follows_the_model_size(recipe, minimum, source, tmp_path):
    guidance = task_of(RECIPES / recipe, tmp_path).plan_data().guidance
    assert guidance is not None and (guidance.minimum, guidance.unit) == (minimum, "examples") and source in guidance.source


def test_classification_has_no_seed_figure(tmp_path):
    data = task_of(RECIPES / "bert-tweet-sentiment.yaml", tmp_path).plan_data()
    assert data.guidance is None and data.balance == {"negative": 20, "neutral": 20, "positive": 20}
    assert (data.train_examples, data.eval_examples, data.overlap) == (60, 15, 0)


# -- the carried configs ---------------------------------------------------------------------------
PARAMETERS = {  # the models' well-known sizes (encoders: the bare model with its pooler)
    "meta-llama/Llama-2-7b-hf": 6_738_415_616,
    "meta-llama/Llama-2-7b-chat-hf": 6_738_415_616,
    "meta-llama/Llama-2-13b-hf": 13_015_864_320,
    "meta-llama/Llama-2-13b-chat-hf": 13_015_864_320,
    "meta-llama/Llama-2-70b-hf": 68_976_648_192,
    "meta-llama/Meta-Llama-3-8B": 8_030_261_248,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": 1_100_048_384,
    "tiiuae/falcon-7b": 6_921_720_704,
    "tiiuae/falcon-7b-instruct": 6_921_720_704,
    "tiiuae/falcon-40b": 41_303_293_952,
    "tiiuae/falcon-40b-instruct": 41_303_293_952,
    "bert-base-uncased": 109_482_240,
    "bert-base-cased": 108_310_272,
    "bert-large-uncased": 335_141_888,
    "roberta-base": 124_645_632,
    "distilbert-base-uncased": 66_362_880,
}


def carried_model(base: str) -> torch.nn.Module:
    from types import SimpleNamespace

    from transformers import AutoModel, AutoModelForCausalLM

    from ftrecipe_text.planning import base_config

    config = base_config(SimpleNamespace(model=SimpleNamespace(base=base, revision=None, trust_remote_code=False)))
    auto = AutoModelForCausalLM if config.architectures[0].endswith("ForCausalLM") else AutoModel
    with torch.device("meta"):
        return auto.from_config(config)


@pytest.mark.parametrize("base", list(PARAMETERS))
def test_the_carried_configs_give_the_real_models_sizes(base):
    assert sum(p.numel() for p in carried_model(base).parameters()) == PARAMETERS[base]


def test_every_carried_config_is_checked():
    from ftrecipe_text.planning import CONFIGS

    assert sorted(p.name for p in CONFIGS.glob("*.json")) == sorted(b.replace("/", "--") + ".json" for b in PARAMETERS)


def test_falcon_ties_its_output_matrix():
    """The hub's "41.8B" counts Falcon-40B's output matrix on its own (the checkpoint stores it twice:
    83,671,941,120 bytes of bf16); Transformers ties it to the embeddings, so the run holds 41.3B."""
    model = carried_model("tiiuae/falcon-40b")
    assert model.lm_head.weight is model.transformer.word_embeddings.weight
    assert PARAMETERS["tiiuae/falcon-40b"] + model.lm_head.weight.numel() == 83_671_941_120 // 2


def test_hub_ids_match_without_case_and_through_redirects():
    from ftrecipe.hub import carried_config
    from ftrecipe_text.planning import ALIASES, CONFIGS

    assert carried_config(CONFIGS, "meta-llama/llama-2-7b-hf", ALIASES)["hidden_size"] == 4096
    assert carried_config(CONFIGS, "google-bert/bert-base-uncased", ALIASES)["vocab_size"] == 30522
    assert carried_config(CONFIGS, "acme/unknown", ALIASES) is None


def test_the_shipped_recipes_plan_their_bases(tmp_path):
    """The Llama-2 and Falcon recipes plan their real bases in bf16 (LoRA with bf16 mixed precision)."""
    llama = task_of(RECIPES / "llama2-7b-sql-qlora.yaml", tmp_path).plan_model()
    assert sum(p.numel() for p in llama.parameters()) == PARAMETERS["meta-llama/Llama-2-7b-hf"]
    assert {p.dtype for p in llama.parameters()} == {torch.bfloat16} and llama.config._attn_implementation == "sdpa"
    falcon = task_of(RECIPES / "falcon-40b-qlora.yaml", tmp_path).plan_model()
    linear = [m for n, m in falcon.named_modules() if n.endswith(("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"))]
    assert len(linear) == 4 * 60 and all(type(m) is torch.nn.Linear for m in linear)  # what the quantiser converts
    bert = task_of(RECIPES / "bert-tweet-sentiment.yaml", tmp_path).plan_model()
    assert sum(p.numel() for p in bert.parameters()) == PARAMETERS["bert-base-uncased"] + 768 * 3 + 3


def test_the_chunked_loss_is_planned_without_the_full_logits(capsys):
    """The plan traces the loss the run computes: without the tokens x vocabulary logits, the rest alike."""
    from ftrecipe.cli import main

    def breakdown(*overrides: str) -> dict[str, int]:
        assert main(["plan", str(RECIPES / "demo" / "llama.yaml"), "--format", "json", *overrides]) == 0
        return json.loads(capsys.readouterr().out)["memory"]["breakdown"]

    standard, chunked = breakdown(), breakdown("--set", "training.loss=chunked")
    assert chunked["logits_and_loss"] < standard["logits_and_loss"] / 4
    for part in ("weights", "gradients", "optimizer", "activations"):
        assert chunked[part] == standard[part], part
