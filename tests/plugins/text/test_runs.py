"""The text plugin through `ftrecipe run`: LoRA / QLoRA / full on tiny LLaMA and Falcon checkpoints,
transfer learning on a tiny BERT, sql-eval end to end (the demos: test_demos.py; packed resume: test_resume.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, run_ok

pytestmark = pytest.mark.e2e  # training runs end to end: outside the fast tier (pytest -m 'not e2e')

LM_EVAL_TASKS = ROOT / "tests" / "fixtures" / "lm_eval_tasks"
WORDS = [f"select name from employees where dept = '{d}' and salary > {n};" for d in ("sales", "hr", "it") for n in range(5)]


def tiny_checkpoint(directory: Path, family: str, **config) -> Path:
    """A tiny pre-trained-looking checkpoint: config, random weights and a tokenizer, via save_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from ftrecipe_text.tiny import tiny_config, train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(WORDS * 4 + ["great movie", "awful service", "it was fine"], vocab_size=300)
    ids = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(0)
    auto = AutoModelForSequenceClassification if family == "bert" else AutoModelForCausalLM
    auto.from_config(tiny_config(family, len(tokenizer), **ids, **config)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def sft_recipe(tmp: Path, base: Path, freeze: str, save: str | None = None, extra: str = "", lm_eval: str = "") -> Path:
    rows = [{"q": f"who earns over {n} in {d}?", "a": f"select name from employees where dept = '{d}' and salary > {n};"}
            for d in ("sales", "hr", "it") for n in range(8)]
    write_jsonl(tmp / "train.jsonl", rows)
    recipe = tmp / "r.yaml"
    recipe.write_text(
        f"model:\n  modality: causal-lm\n  base: {base}\n"
        f"freeze:\n{freeze}"
        "data:\n  format: jsonl\n  train: train.jsonl\n  columns: {prompt: q, completion: a}\n  max_length: 64\n"
        "training:\n  max_steps: 4\n  batch_size: 4\n  learning_rate: 1.0e-3\n  log_every: 1\n"
        "hardware:\n  accelerator: cpu\n  precision: fp32\n"
        "evaluation:\n  metrics: [exact_match]\n  max_examples: 4\n  generation: {max_new_tokens: 8}\n"
        + (f"  lm_eval: {lm_eval}\n" if lm_eval else "")
        + (f"output:\n  save: {save}\n" if save else "") + extra
    )
    return recipe


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("llama"), "llama")


@pytest.fixture(scope="module")
def falcon_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("falcon"), "falcon")


def harness_scores(model, tokenizer_dir: Path, monkeypatch) -> dict:
    """What EleutherAI's lm-eval itself reports for ``model`` on the tests' tiny task."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    monkeypatch.chdir(LM_EVAL_TASKS)  # the task's data_files are relative to its folder
    lm = HFLM(pretrained=model.eval(), tokenizer=AutoTokenizer.from_pretrained(tokenizer_dir), batch_size=4)
    manager = TaskManager(include_path=str(LM_EVAL_TASKS), include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=["sql_choice"], task_manager=manager, bootstrap_iters=0)["results"]["sql_choice"]


def test_lora_adapter_loads_back_with_peft(tmp_path, llama_dir, monkeypatch):
    """(The run also scores the model on an lm-eval task before and after: the numbers lm-eval gives for
    the base checkpoint and for the saved adapter on it.)"""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lm_eval = f"{{tasks: [sql_choice], include_path: {LM_EVAL_TASKS}, batch_size: 4}}"
    recipe = sft_recipe(tmp_path, llama_dir, "  strategy: lora\n  lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}\n", lm_eval=lm_eval)
    summary = run_ok(recipe, tmp_path / "run", "--set", "training.eval_every=2")
    freeze = summary["freeze"]
    assert 0 < freeze["trainable_parameters"] < freeze["total_parameters"] * 0.2
    evaluations = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in evaluations if r["kind"].startswith("eval")]
    harness_ran = [(r["kind"], r["step"], "lm_eval/sql_choice/acc" in r) for r in evaluations]
    assert harness_ran == [("eval_before", 0, True), ("eval", 2, False), ("eval_after", 4, True)]  # not at periodic ones
    assert summary["data"]["packing"] is True and "padding_fraction" in summary["data"]
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "adapter_config.json").is_file() and (model_dir / "tokenizer.json").is_file()
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(llama_dir), model_dir)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    before, after = summary["eval_before"]["lm_eval/sql_choice/acc"], summary["eval_after"]["lm_eval/sql_choice/acc"]
    assert before == harness_scores(AutoModelForCausalLM.from_pretrained(llama_dir), llama_dir, monkeypatch)["acc,none"]
    assert after == harness_scores(model, llama_dir, monkeypatch)["acc,none"]
    table = summary["eval_report"]["lm_eval"]["sql_choice"]  # per task before, after and the change
    assert (table["metric"], table["before"], table["after"], table["examples"]) == ("acc", before, after, 12)
    assert table["delta"] == pytest.approx(after - before) and table["worse"] is (after < before)
    assert not any(key.endswith("_delta") for key in summary["eval_after"])
    report = json.loads((tmp_path / "run" / "lm_eval.json").read_text())["tasks"]["sql_choice"]
    assert (report["before"]["value"], report["after"]["value"], report["after"]["examples"]) == (before, after, 12)
    assert report["worse"] is (after < before)
    import hashlib

    card = (model_dir / "README.md").read_text()
    header = card.split("---\n")[1]  # the metadata the Hugging Face Hub reads
    assert f"base_model: {llama_dir}" in header and "library_name: peft" in header and "pipeline_tag: text-generation" in header
    assert "- lora" in header and "- causal-lm" in header
    files = json.loads((tmp_path / "run" / "run.json").read_text())["data_files"]
    train = tmp_path / "train.jsonl"
    assert files == {str(train.resolve()): "sha256:" + hashlib.sha256(train.read_bytes()).hexdigest()}


def _logits(model, tokenizer_dir: Path):
    import torch
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tokenizer_dir)(["who earns over 3 in hr?"], return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def test_merged_save_carries_the_training(tmp_path, falcon_dir):
    """The merged model is the adapter folded in: the same outputs as base + adapter, weights changed
    where the adapters were and nowhere else (`unload()` instead of `merge_and_unload()` fails this)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    lora = "  strategy: lora\n  lora: {r: 4, alpha: 8, target_modules: [query_key_value]}\n"
    run_ok(sft_recipe(tmp_path, falcon_dir, lora, save="adapter"), tmp_path / "adapter")
    run_ok(sft_recipe(tmp_path, falcon_dir, lora, save="merged"), tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged" / "model").eval()
    base = AutoModelForCausalLM.from_pretrained(falcon_dir).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    before, after = base.state_dict(), merged.state_dict()
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all("query_key_value" in name for name in changed)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(falcon_dir), tmp_path / "adapter" / "model").eval()
    torch.testing.assert_close(_logits(merged, falcon_dir), _logits(adapted, falcon_dir), atol=1e-4, rtol=1e-4)


def test_partial_freeze_of_first_layers_and_embeddings(tmp_path, llama_dir):
    import torch
    from transformers import AutoModelForCausalLM

    freeze = "  strategy: partial\n  freeze: ['model.embed_tokens.*']\n  freeze_layers: {first: 1}\n"
    run_ok(sft_recipe(tmp_path, llama_dir, freeze), tmp_path / "run")
    before = AutoModelForCausalLM.from_pretrained(llama_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model").state_dict()
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    assert torch.equal(before["model.layers.0.mlp.up_proj.weight"], after["model.layers.0.mlp.up_proj.weight"])
    assert not torch.equal(before["model.layers.1.mlp.up_proj.weight"], after["model.layers.1.mlp.up_proj.weight"])


def qlora_recipe(tmp_path: Path, base: Path, save: str) -> Path:
    text = sft_recipe(tmp_path, base, "  strategy: qlora\n", save=save).read_text().replace("precision: fp32", "precision: bf16-mixed")
    (tmp_path / f"q-{save}.yaml").write_text(text)
    return tmp_path / f"q-{save}.yaml"


def test_qlora_trains_adapters_on_a_4bit_base(tmp_path, falcon_dir):
    """The base the run trains is NF4 (bitsandbytes 4-bit layers), and only the adapters train. Its
    checkpoints hold the adapters, not the 4-bit base; one loads back into a freshly built model without
    touching the base; a resume onto a base rewritten since the run is refused."""
    import shutil

    import bitsandbytes as bnb
    import torch

    from ftrecipe.freeze import apply_freeze_plan
    from ftrecipe.plugin import TaskContext
    from ftrecipe.registry import get_registry
    from ftrecipe.runner.frozen import load_without_frozen
    from ftrecipe.validation import validate_file
    from ftrecipe_text.causal_lm import CausalLMTask

    base = shutil.copytree(falcon_dir, tmp_path / "base")  # (rewritten below)
    recipe = qlora_recipe(tmp_path, base, "adapter")
    summary = run_ok(recipe, tmp_path / "run")
    from safetensors.torch import load_file, save_file

    adapter = load_file(tmp_path / "run" / "model" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert summary["freeze"]["strategy"] == "qlora"
    assert summary["freeze"]["trainable_parameters"] == sum(t.numel() for t in adapter.values())  # the adapters, only
    assert (tmp_path / "run" / "libraries.log").is_file()  # where bitsandbytes' own notices went (run_ok: not the console)
    checkpoint = tmp_path / "run" / "checkpoints" / "step-0000004"
    held = load_file(checkpoint / "model.safetensors")
    assert sorted(name.replace(".default", "") for name in held if "lora_" in name) == sorted(adapter)
    assert not [name for name in held if "lora_" not in name and "rotary" not in name], list(held)  # (buffers stay)
    from ftrecipe.plan.build import plan_recipe

    result = validate_file(recipe)
    planned = plan_recipe(result, cache=False).checkpoints  # what `ftrecipe plan` said each checkpoint would take
    written = sum((checkpoint / name).stat().st_size for name in ("model.safetensors", "optimizer.bin"))
    assert planned["kept"] == 2 and abs(written - planned["bytes_each"]) <= 0.1 * planned["bytes_each"], (written, planned)

    task = CausalLMTask(TaskContext(recipe=result.recipe, registry=get_registry(), base_dir=tmp_path, output_dir=tmp_path / "x"))
    task.build_data()
    model = task.build_model()
    four_bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(four_bit) == 4 * model.config.num_hidden_layers  # every linear layer of every block
    assert all(m.weight.quant_type == "nf4" for m in four_bit)
    model, _ = apply_freeze_plan(model, result.recipe, task.anatomy(model))
    packed = [m.weight.data.clone() for m in four_bit]
    load_without_frozen(model, checkpoint / "model.safetensors")
    state = model.state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in held.items())
    assert all(torch.equal(m.weight.data, before) for m, before in zip(four_bit, packed, strict=True))

    weights = load_file(base / "model.safetensors")  # the base rewritten in place: another pre-trained model
    save_file({name: tensor + 0.01 for name, tensor in weights.items()}, base / "model.safetensors")
    resumed = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--resume", "--set", "training.max_steps=6")
    assert resumed.returncode == 1, resumed.stderr
    assert "the frozen weights differ from those checkpoint step-0000004 was trained on" in resumed.stderr


def test_qlora_with_a_merged_save_is_a_plain_full_precision_model(tmp_path, falcon_dir):
    import torch
    from transformers import AutoModelForCausalLM

    run_ok(qlora_recipe(tmp_path, falcon_dir, "merged"), tmp_path / "run")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "model")
    base = AutoModelForCausalLM.from_pretrained(falcon_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert getattr(merged.config, "quantization_config", None) is None
    assert all(p.dtype in (torch.bfloat16, torch.float32) for p in merged.parameters())
    before, after = base.state_dict(), merged.state_dict()
    # merged into the base in its compute dtype: untouched layers are the base's, rounded alike
    changed = [name for name in before if not torch.equal(before[name].to(after[name].dtype), after[name])]
    assert changed and all(name.endswith(".weight") and ".h." in name for name in changed)


def test_transfer_learning_trains_only_the_new_head(tmp_path):
    base = tiny_checkpoint(tmp_path / "bert", "bert")
    rows = [{"text": t, "label": l} for t, l in [("great movie", "pos"), ("awful service", "neg")] * 20]
    write_jsonl(tmp_path / "train.jsonl", rows)
    text = (
        f"model:\n  modality: text-classification\n  base: {base}\n"
        "freeze:\n  strategy: transfer\n"
        "head:\n  mode: replace\n  labels: [neg, pos]\n"
        "data:\n  format: jsonl\n  train: train.jsonl\n  max_length: 16\n"
        "training:\n  max_steps: 3\n  batch_size: 8\n  learning_rate: 1.0e-2\n"
        "hardware:\n  accelerator: cpu\n"
    )
    (tmp_path / "t.yaml").write_text(text)
    head_only = run_ok(tmp_path / "t.yaml", tmp_path / "a")
    assert {"accuracy", "f1"} <= set(head_only["eval_after"])
    run_ok(tmp_path / "t.yaml", tmp_path / "b", "--set", "freeze.unfreeze_top=1")
    import torch
    from transformers import AutoModelForSequenceClassification

    original = AutoModelForSequenceClassification.from_pretrained(base).state_dict()

    def changed(run: str) -> set[str]:
        saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / run / "model")
        assert saved.config.id2label == {0: "neg", 1: "pos"}
        weights = saved.state_dict()
        return {name for name in weights if name not in original or not torch.equal(weights[name], original[name])}

    # which saved weights moved, not what the freeze report says: the new head only, then the top layer too
    assert {name.split(".")[0] for name in changed("a")} == {"classifier"}
    top_changed = changed("b")
    assert any(".layer.1." in name for name in top_changed) and not any(".layer.0." in name for name in top_changed)
    assert not any("embeddings" in name for name in top_changed)


def test_missing_column_points_at_columns(tmp_path, llama_dir):
    recipe = sft_recipe(tmp_path, llama_dir, "  strategy: full\n")
    recipe.write_text(recipe.read_text().replace("completion: a", "completion: answer"))
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert f"{recipe}:9:12: data.columns: no training example could be read" in result.stderr


@pytest.mark.e2e
def test_sql_eval_end_to_end(tmp_path):
    recipe = tmp_path / "sql.yaml"
    recipe.write_text(
        "model:\n  modality: causal-lm\n  base: llama\n  init: scratch\n"
        f"data:\n  format: sql-eval\n  root: {ROOT / 'recipes' / 'data' / 'sql-eval'}\n  max_length: 384\n  eval_fraction: 0.05\n"
        "training:\n  epochs: 3\n  batch_size: 4\n  learning_rate: 3.0e-3\n  log_every: 5\n"
        "hardware:\n  accelerator: cpu\n"
        "evaluation:\n  metrics: [exact_match_sql]\n  max_examples: 4\n  generation: {max_new_tokens: 24}\n"
    )
    summary = run_ok(recipe, tmp_path / "run")
    assert summary["eval_after"]["eval_loss"] < summary["eval_before"]["eval_loss"] * 0.8
    assert summary["data"]["train_examples"] + summary["data"]["eval_examples"] == 210
    assert 0.0 <= summary["eval_after"]["exact_match_sql"] <= 1.0 and "exact_match_sql" in summary["eval_before"]
    samples = [json.loads(x) for x in (tmp_path / "run" / "eval_after_samples.jsonl").read_text().splitlines()]
    assert samples and "-- schema: CREATE TABLE" in samples[0]["prompt"] and samples[0]["reference"].upper().startswith("SELECT")
    assert any(kind in samples[0]["prompt"] for kind in (" bigint", " text", " integer"))  # typed, from metadata/
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < losses[0] * 0.7


def test_corrupt_records_are_skipped_and_counted_or_fatal(tmp_path, llama_dir):
    recipe = sft_recipe(tmp_path, llama_dir, "  strategy: full\n")
    with open(tmp_path / "train.jsonl", "a") as handle:
        handle.write("{not json\n[1, 2]\n")
    summary = run_ok(recipe, tmp_path / "run")
    assert summary["data"]["skipped"] == 2
    assert summary["data"]["skipped_examples"][f"{tmp_path / 'train.jsonl'}:25"] == "invalid JSON: Expecting property name enclosed in double quotes"
    strict = recipe.read_text().replace("  max_length: 64\n", "  max_length: 64\n  on_error: fail\n")
    recipe.write_text(strict)
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "strict"))
    assert result.returncode == 2 and "data.train: " in result.stderr and "train.jsonl:25: corrupt record" in result.stderr


def test_hugging_face_dataset_folder_and_chat_form(tmp_path, llama_dir):
    import datasets

    messages = [[{"role": "user", "content": f"double {i}"}, {"role": "assistant", "content": str(2 * i)}] for i in range(20)]
    datasets.Dataset.from_dict({"messages": messages}).save_to_disk(str(tmp_path / "chats"))
    recipe = tmp_path / "chat.yaml"
    recipe.write_text(
        f"model:\n  modality: causal-lm\n  base: {llama_dir}\n"
        "data:\n  format: hf\n  train: chats\n  form: chat\n  max_length: 64\n"
        "training:\n  max_steps: 2\n  batch_size: 4\n"
        "hardware:\n  accelerator: cpu\n"
        "evaluation:\n  max_examples: 2\n  generation: {max_new_tokens: 4}\n"
    )
    summary = run_ok(recipe, tmp_path / "run")
    assert summary["data"]["train_examples"] == 18 and summary["data"]["eval_examples"] == 2
    sample = json.loads((tmp_path / "run" / "eval_after_samples.jsonl").read_text().splitlines()[0])
    assert "<|user|>" in sample["prompt"] and sample["prompt"].rstrip().endswith("<|assistant|>")
