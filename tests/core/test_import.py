"""`ftrecipe import FORMAT CONFIG`: real axolotl, torchtune, LLaMA-Factory and Ultralytics configs
(tests/fixtures/foreign_configs, licences in its LICENSES.md) become recipes that validate, with every
source key carried (a `# from:` comment beside its value) or listed as not carried over with the reason,
and the source tools' defaults that differ from ftrecipe's written and pinned here to their citations."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from ftrecipe.cli import main
from ftrecipe.importing import FORMATS, get_format
from ftrecipe.importing.engine import ABSENT, Imported, convert, key_path, render_recipe
from ftrecipe.importing.render import keys_markdown, readme_tables
from ftrecipe.importing.table import KINDS
from ftrecipe.validation import validate_text
from ftrecipe.yamlio import load_yaml
from tests.conftest import FIXTURES, ROOT

CONFIGS = FIXTURES / "foreign_configs"
REAL = {
    "axolotl/llama-2-qlora.yml": "axolotl",
    "axolotl/falcon-qlora.yml": "axolotl",
    "axolotl/tiny-llama-lora.yml": "axolotl",
    "torchtune/7B_lora_single_device.yaml": "torchtune",
    "llamafactory/llama3_lora_sft.yaml": "llamafactory",
    "ultralytics/yolo11n-finetune.yaml": "ultralytics",
}
WRITTEN = {  # written for these tests: each tool's tracker keys
    "axolotl/trackers.yml": "axolotl",
    "llamafactory/trackers.yaml": "llamafactory",
    "torchtune/trackers.yaml": "torchtune",
}
ALL = {**REAL, **WRITTEN}


def imported(fmt: str, text: str, source: str = "config.yml", recipe: str = "recipe.yaml") -> tuple[Imported, str]:
    result = convert(get_format(fmt), text, source)
    return result, render_recipe(result, recipe, f"ftrecipe import {fmt} {source} -o {recipe}")


def leaves(data: Any, prefix: str = "") -> list[str]:
    """Every key of the source, dotted (a list is one value)."""
    found = []
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        found += leaves(value, dotted) if isinstance(value, dict) and value else [dotted]
    return found


def comments(recipe: str) -> dict[str, str]:
    """Recipe dotted key -> the comment beside its value (ruamel round-trip keeps them)."""
    from ruamel.yaml import YAML

    found: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(value, dotted)
            token = node.ca.items.get(key)
            comment = next((t for t in (token or []) if t is not None and not isinstance(t, list)), None)
            if comment is not None:
                found[dotted] = comment.value.strip().lstrip("#").strip()

    walk(YAML().load(recipe), "")
    return found


@pytest.fixture(scope="module")
def real() -> dict[str, tuple[Imported, str, Any]]:
    out = {}
    for name, fmt in ALL.items():
        text = (CONFIGS / name).read_text()
        out[name] = (*imported(fmt, text, f"tests/fixtures/foreign_configs/{name}"), load_yaml(text).data)
    return out


# ---------------------------------------------------------------- the real configs


@pytest.mark.parametrize("name", ALL)
def test_a_real_config_imports_with_every_key_explained_and_the_recipe_validates(real, name):
    result, recipe, source = real[name]
    fmt = get_format(ALL[name])
    accounted = set(result.carried) | {k for k, _ in result.kept} | {d.key for d in result.dropped} | set(result.empty)
    for key in leaves(source):
        parts = key.split(".")
        assert any(".".join(parts[:i]) in accounted for i in range(1, len(parts) + 1)), f"{key} is not accounted for"
    for item in result.dropped:
        assert item.kind in KINDS and item.reason and item.reason != fmt.unknown, f"{item.key} is unexplained"
        assert f"#   {item.key}: " in recipe, f"{item.key} is not listed at the top of the recipe"
    validation = validate_text(recipe, source="recipe.yaml")
    assert validation.ok, [d.text() for d in validation.diagnostics]
    assert recipe.startswith("# ftrecipe run recipe.yaml\n#\n# Imported from the ")
    for target, comment in comments(recipe).items():  # every `from:` names a key the source has, with its value
        for origin in comment.removeprefix("from: ").split("; ") if comment.startswith("from: ") else []:
            key, _, value = origin.partition(": ")
            assert key_path(key)[0] in source, f"{target}: {comment}"


def installed_default_yaml() -> str:
    """The installed Ultralytics' own cfg/default.yaml (read at test time: Ultralytics is AGPL, not copied here)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("ultralytics")
    if spec is None or spec.origin is None:
        pytest.skip("ultralytics is not installed: no default.yaml to import")
    return (Path(spec.origin).parent / "cfg" / "default.yaml").read_text(encoding="utf-8")


def test_a_copy_of_ultralytics_default_yaml_imports_with_every_key_explained(tmp_path, capsys):
    shipped = installed_default_yaml()
    edits = {"model": "yolo11n.pt", "data": "coco8.yaml", "epochs": "30", "imgsz": "320"}
    text = shipped
    for key, value in edits.items():  # as a user edits their copy (`yolo cfg=custom.yaml`): same lines
        text, count = re.subn(rf"^{key}:[^#\n]*", f"{key}: {value} ", text, count=1, flags=re.M)
        assert count == 1, key
    assert text.count("\n") == shipped.count("\n")
    config = tmp_path / "custom.yaml"
    config.write_text(text, encoding="utf-8")
    result, recipe = imported("ultralytics", text, str(config))
    source = load_yaml(text).data
    fmt = get_format("ultralytics")
    unknown = [item.key for item in result.dropped if item.reason == fmt.unknown]
    assert not unknown, f"keys of default.yaml without a row: {unknown}"
    assert all(fmt.row(key) for key in source), "every key of default.yaml has a row"
    assert {item.key for item in result.dropped} <= {"patience", "optimizer"}, [d.located("") for d in result.dropped]
    validation = validate_text(recipe, source="recipe.yaml")
    assert validation.ok, [d.text() for d in validation.diagnostics]
    found = comments(recipe)
    assert found["model.base"] == "from: model: yolo11n.pt" and found["data.yaml"] == "from: data: coco8.yaml"
    assert found["training.epochs"] == "from: epochs: 30" and found["model.image_size"] == "from: imgsz: 320"
    kept = dict(result.kept)
    assert kept["show_labels"] == "a setting of Ultralytics' predict mode, not of training (at its default)"
    assert kept["pose"] == "a setting of Ultralytics' pose task; ftrecipe's YOLO modality detects (at its default)"

    assert main(["import", "ultralytics", str(config), "-o", str(tmp_path / "r.yaml"), "--strict"]) == 2
    first = re.search(rf"^{re.escape(str(config))}:(\d+):1: (\w+): not carried over", capsys.readouterr().err, re.M)
    assert first, "--strict names the first dropped key with its line"
    line, key = int(first[1]), first[2]
    assert text.splitlines()[line - 1].startswith(f"{key}:")


def test_default_yaml_as_shipped_says_to_set_model_and_data(tmp_path):
    result, recipe = imported("ultralytics", installed_default_yaml(), "default.yaml")
    dropped = {item.key: item for item in result.dropped}
    assert "set model: to the weights" in dropped["model"].reason and "set data: to the data YAML" in dropped["data"].reason
    assert "model" not in result.empty and "data" not in result.empty
    assert "#   model: null (line " in recipe
    diagnostics = [d.text() for d in validate_text(recipe, source="recipe.yaml").diagnostics]
    assert any("model.base: missing required key" in d for d in diagnostics), diagnostics


@pytest.mark.parametrize(("text", "kept", "dropped"), [
    ("show: true\n", set(), {"show": "a setting of Ultralytics' predict mode, not of training"}),
    ("format: onnx\n", set(), {"format": "a setting of Ultralytics' export mode, not of training"}),
    ("tracker: botsort.yaml\n", {"tracker"}, {}),
    ("tracker: my-tracker.yaml\n", set(), {"tracker": "a setting of Ultralytics' track mode, not of training"}),
    ("erasing: 0.0\n", set(), {"erasing": "a setting of Ultralytics' classify task; ftrecipe's YOLO modality detects"}),
    ("iou: 0.7\nkobj: 1.0\n", {"iou", "kobj"}, {}),
])
def test_ultralytics_keys_of_other_modes_and_tasks_are_read_at_their_default_only(text, kept, dropped):
    result, _ = imported("ultralytics", "model: yolo11n.pt\ndata: data/coco8.yaml\noptimizer: SGD\n" + text)
    assert {key for key, _ in result.kept} >= kept
    assert {item.key: item.reason for item in result.dropped} == dropped


def test_the_llama2_qlora_recipe_says_where_each_value_came_from(real):
    result, recipe, _ = real["axolotl/llama-2-qlora.yml"]
    notes = comments(recipe)
    assert notes["freeze.strategy"] == "from: adapter: qlora"
    assert notes["freeze.lora.r"] == "from: lora_r: 32" and notes["freeze.lora.alpha"] == "from: lora_alpha: 16"
    assert notes["freeze.lora.target_modules"] == "from: lora_target_linear: true"
    assert notes["data.train"] == "from: datasets[0].path: mhenrichsen/alpaca_2k_test"
    assert notes["data.form"] == "from: datasets[0].type: alpaca"
    assert notes["training.optimizer"] == "from: optimizer: paged_adamw_32bit"
    assert notes["hardware.precision"] == "from: bf16: auto"
    assert "#   optimizer: 32-bit AdamW, but not paged" in recipe  # carried, with what differs said
    assert [(d.key, d.mark.line) for d in result.dropped] == [("tf32", 44), ("evals_per_epoch", 52)]
    assert "wandb_project" in result.empty and "lora_model_dir" in result.empty
    assert not [key for key in result.values if key.startswith("tracking.")]  # empty wandb_* keys: no tracker


def test_the_real_configs_without_a_tracker_import_none(real):
    """torchtune's DiskLogger is ftrecipe's own metrics.jsonl; LLaMA-Factory's report_to: none is no tracker."""
    for name, key, why in (("torchtune/7B_lora_single_device.yaml", "metric_logger._component_", "metrics.jsonl"),
                           ("llamafactory/llama3_lora_sft.yaml", "report_to", "no tracker")):
        result, recipe, _ = real[name]
        assert why in dict(result.kept)[key], name
        assert not [target for target in result.values if target.startswith("tracking.")] and "\ntracking:" not in recipe


def test_the_falcon_qlora_lists_what_it_cannot_carry_at_the_top_and_on_the_console(tmp_path, capsys):
    source = CONFIGS / "axolotl" / "falcon-qlora.yml"
    target = tmp_path / "falcon.yaml"
    assert main(["import", "axolotl", str(source), "-o", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{source} -> {target}: ") and "7 not carried over (datasets[0].data_files, tf32, " in out
    assert "  line 68  tf32: true: no equivalent: ftrecipe leaves TF32 matmuls to PyTorch's setting" in out
    assert "  line 21  datasets[0].data_files: " in out
    recipe = target.read_text()
    header = recipe.split("\nname: ")[0]
    assert "# Not carried over (7):\n" in header
    assert "#   tf32: true (line 68): no equivalent: ftrecipe leaves TF32 matmuls to PyTorch's setting" in header
    assert "#   special_tokens: {\"pad_token\": \"<|endoftext|>\"" in header
    assert "validates" in out


@pytest.mark.e2e
def test_plan_reads_an_imported_recipe_offline(tmp_path, capsys):
    """The real planner: the torchtune import names meta-llama/Llama-2-7b-hf, whose config ships with the text
    plugin, so parameters and memory are planned here without the hub (e2e: torch and a 7B model on the meta device,
    about 10 s of CPU)."""
    target = tmp_path / "llama2-lora.yaml"
    assert main(["import", "torchtune", str(CONFIGS / "torchtune" / "7B_lora_single_device.yaml"), "-o", str(target)]) == 0
    capsys.readouterr()
    assert main(["plan", str(target), "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["params"]["strategy"] == "lora" and 0 < plan["params"]["trainable"] < plan["params"]["total"] / 100
    assert plan["memory"]["per_device_bytes"] > 0


def test_diff_reads_an_imported_recipe_against_a_shipped_one(tmp_path, capsys):
    """The key changes of the Falcon-7B import against the shipped Falcon-40B recipe (the impact rows come from the
    planner, faked here as in test_diff.py; the real one is the test above)."""
    from ftrecipe.plan.diff import run_diff
    from tests.core.test_diff import FakePlan

    target = tmp_path / "falcon-qlora.yaml"
    assert main(["import", "axolotl", str(CONFIGS / "axolotl" / "falcon-qlora.yml"), "-o", str(target)]) == 0
    capsys.readouterr()
    args = argparse.Namespace(old=str(ROOT / "recipes" / "falcon-40b-qlora.yaml"), new=str(target), format="text")
    assert run_diff(args, planner=FakePlan) == 0
    out = capsys.readouterr().out
    assert "~ model.base: tiiuae/falcon-40b -> tiiuae/falcon-7b" in out and "~ freeze.lora.r" not in out
    assert "~ training.scheduler: constant_with_warmup -> cosine" in out and "~ training.epochs: null -> 4" in out
    assert '~ freeze.lora.target_modules: ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"] -> all-linear' in out
    assert "~ data.train: data/instructions.jsonl -> QingyiSi/Alpaca-CoT" in out and "~ training.optimizer: adamw-8bit -> adamw" in out


# ---------------------------------------------------------------- the command


def test_strict_refuses_a_config_at_the_line_of_each_key_it_would_drop(tmp_path, capsys):
    source = CONFIGS / "axolotl" / "falcon-qlora.yml"
    target = tmp_path / "falcon.yaml"
    assert main(["import", "axolotl", str(source), "-o", str(target), "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{source}:68:1: tf32: not carried over (no equivalent): ftrecipe leaves TF32" in err
    assert f"{source}:21:5: datasets[0].data_files: not carried over (no equivalent)" in err
    assert f"{source}: refused (--strict): 7 keys would not be carried over" in err
    assert not target.exists()


def test_strict_accepts_a_config_with_nothing_dropped(tmp_path, capsys):
    config = tmp_path / "clean.yml"
    config.write_text("base_model: tiiuae/falcon-7b\nadapter: lora\nlora_r: 8\nlora_alpha: 16\nlora_target_linear: true\n"
                      "learning_rate: 2e-4\n"
                      "datasets:\n  - path: data/train.jsonl\n    type: alpaca\n")
    assert main(["import", "axolotl", str(config), "-o", str(tmp_path / "r.yaml"), "--strict"]) == 0
    assert "nothing dropped; validates" in capsys.readouterr().out


def test_an_existing_recipe_is_refused_without_force_and_replaced_with_it(tmp_path, capsys):
    source = CONFIGS / "axolotl" / "tiny-llama-lora.yml"
    target = tmp_path / "tiny.yaml"
    target.write_text("mine\n")
    assert main(["import", "axolotl", str(source), "-o", str(target)]) == 2
    assert f"{target} exists; pass --force to overwrite it" in capsys.readouterr().err
    assert target.read_text() == "mine\n"
    assert main(["import", "axolotl", str(source), "-o", str(target), "--force"]) == 0
    assert target.read_text().startswith(f"# ftrecipe run {target}\n")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.yaml"]  # no temporary file left behind


def test_a_folder_imports_every_config_with_one_summary_line_each(tmp_path, capsys):
    out = tmp_path / "recipes"
    assert main(["import", "axolotl", str(CONFIGS / "axolotl"), "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(p.name for p in out.iterdir()) == ["falcon-qlora.yaml", "llama-2-qlora.yaml", "tiny-llama-lora.yaml",
                                                     "trackers.yaml"]
    summaries = [line for line in lines if " -> " in line]
    assert len(summaries) == 4 and all(line.endswith("; validates") for line in summaries)
    assert lines[-1] == "4 configs: 4 imported, 0 refused or invalid"


def test_configs_of_the_same_name_in_different_folders_get_their_folder_in_front(tmp_path, capsys):
    for folder in ("llama-2", "falcon"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "qlora.yml").write_text(f"base_model: org/{folder}\nlearning_rate: 1e-4\n")
    assert main(["import", "axolotl", str(tmp_path / "llama-2" / "qlora.yml"), str(tmp_path / "falcon" / "qlora.yml"),
                 "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["falcon-qlora.yaml", "llama-2-qlora.yaml"]


def test_a_config_that_is_not_yaml_is_located_and_exits_2(tmp_path, capsys):
    config = tmp_path / "bad.yml"
    config.write_text("base_model: x\nlora_r: [1,\n")
    assert main(["import", "axolotl", str(config), "-o", str(tmp_path / "r.yaml")]) == 2
    assert re.search(rf"ftrecipe import: {re.escape(str(config))}:\d+:\d+: ", capsys.readouterr().err)
    assert not (tmp_path / "r.yaml").exists()


def test_an_unknown_key_is_listed_not_dropped_silently(tmp_path):
    result, recipe = imported("axolotl", "base_model: org/model\nlearning_rate: 1e-4\nfrobnicate: 3\n")
    [item] = result.dropped
    assert (item.key, item.kind, item.mark.line) == ("frobnicate", "no equivalent", 3)
    assert "#   frobnicate: 3 (line 3): no equivalent: not in ftrecipe's table for this tool" in recipe


@pytest.mark.parametrize("fmt", FORMATS)
def test_keys_prints_the_table_every_row_and_default_with_its_citation(fmt, capsys):
    assert main(["import", fmt, "--keys"]) == 0
    out = capsys.readouterr().out
    table = get_format(fmt)
    for row in table.rows:
        assert re.search(rf"^{re.escape(row.source)} +{re.escape(row.target or '-')} ", out, re.M), row.source
    for default in table.defaults:
        assert default.citation in out
    assert main(["import", fmt, "--keys", "--markdown"]) == 0
    assert capsys.readouterr().out == keys_markdown(table)


def test_the_readme_tables_cover_every_format_and_row():
    text = readme_tables()
    for fmt in FORMATS:
        table = get_format(fmt)
        assert f"#### `ftrecipe import {fmt}`" in text
        assert all(f"| `{row.source}` |" in text for row in table.rows)


# ---------------------------------------------------------------- datasets (axolotl)


@pytest.mark.parametrize("dataset, expected", [
    ("{path: data/train.jsonl, type: alpaca}", {"data.format": "jsonl", "data.train": "data/train.jsonl", "data.form": "instruction"}),
    ("{path: data/train.parquet, type: completion, field: body}",
     {"data.format": "parquet", "data.form": "completion", "data.template": "", "data.columns.completion": "body"}),
    ("{path: org/chats, type: chat_template, field_messages: conversations, split: train_sft}",
     {"data.format": "hf", "data.train": "org/chats", "data.form": "chat", "data.columns.messages": "conversations",
      "data.train_split": "train_sft"}),
    ("{path: ./saved, type: alpaca, field_instruction: q, field_output: a}",
     {"data.format": "hf", "data.columns.instruction": "q", "data.columns.output": "a"}),
])
def test_axolotl_datasets_with_a_form_are_mapped(dataset, expected):
    result, recipe = imported("axolotl", f"base_model: org/m\nlearning_rate: 1e-4\ndatasets:\n  - {dataset}\n")
    assert {key: result.values[key][0] for key in expected} == expected
    assert validate_text(recipe, source="recipe.yaml").ok


@pytest.mark.parametrize("dataset, key, reason", [
    ("{path: data/segments.jsonl, type: input_output}", "datasets[0].type", "segments with their own train/ignore labels"),
    ("{path: data/x.jsonl, type: sharegpt}", "datasets[0].type", "no ftrecipe form for axolotl's 'sharegpt'"),
    ("{path: data/x.jsonl, type: {field_instruction: q, format: '{instruction}'}}", "datasets[0].type", "a custom prompt format"),
])
def test_axolotl_datasets_without_a_form_are_flagged(dataset, key, reason):
    result, recipe = imported("axolotl", f"base_model: org/m\nlearning_rate: 1e-4\ndatasets:\n  - {dataset}\n")
    [item] = [d for d in result.dropped if d.key == key]
    assert reason in item.reason and item.mark.line == 4
    assert validate_text(recipe, source="recipe.yaml").ok  # data.format and data.train still written


def test_several_local_files_of_one_type_become_a_list_and_a_second_hub_dataset_is_flagged():
    text = ("base_model: org/m\nlearning_rate: 1e-4\ndatasets:\n  - {path: a.jsonl, type: alpaca}\n"
            "  - {path: b.jsonl, type: alpaca}\n  - {path: org/other, type: alpaca}\n")
    result, _ = imported("axolotl", text)
    assert result.values["data.train"][0] == ["a.jsonl", "b.jsonl"]
    assert [(d.key, d.mark.line) for d in result.dropped] == [("datasets[2]", 6)]


# ---------------------------------------------------------------- defaults, pinned with their citations

AXOLOTL = "https://github.com/axolotl-ai-cloud/axolotl/blob/067b021c8b87a9e5e380b9173c704cf7340e30f5/src/axolotl"
LLAMAFACTORY = "https://github.com/hiyouga/LLaMA-Factory/blob/000526908ae92cc1567130559f04a3436855e0cd/src/llamafactory/hparams"
TRANSFORMERS = "https://github.com/huggingface/transformers/blob/v5.25.0/src/transformers/training_args.py"
TORCHTUNE = "https://github.com/pytorch/torchtune/blob/bd2a0fc7c31430972728494fa01aaeeb0ebf1ba1"
ULTRALYTICS = "https://github.com/ultralytics/ultralytics/blob/v8.4.190/ultralytics/cfg/default.yaml"
INTEGRATIONS = "https://github.com/huggingface/transformers/blob/v5.25.0/src/transformers/integrations/integration_utils.py"
WANDB_SETTINGS = "https://github.com/wandb/wandb/blob/v0.31.0/wandb/sdk/wandb_settings.py"

PINNED = {
    "axolotl": {  # the config schema's field defaults, and the trainer builder's warm-up when none is set
        "training.scheduler": ("cosine", f"{AXOLOTL}/utils/schemas/training.py#L144"),  # lr_scheduler: str | None = "cosine"
        "training.warmup_ratio": (0.03, f"{AXOLOTL}/core/builders/base.py#L247-L250"),  # min(int(0.03 * total), 100)
        "freeze.lora.dropout": (0.0, f"{AXOLOTL}/utils/schemas/peft.py#L80"),  # lora_dropout: float | None = 0.0
        "data.packing": (False, f"{AXOLOTL}/utils/schemas/config.py#L688-L693"),  # sample_packing default None
        "data.max_length": (512, f"{AXOLOTL}/utils/schemas/config.py#L665-L670"),  # sequence_len default=512
        "data.eval_fraction": (0.0, f"{AXOLOTL}/utils/schemas/config.py#L1084-L1089"),  # val_set_size default=0.0
        "training.batch_size": (1, f"{AXOLOTL}/utils/schemas/training.py#L77-L82"),  # micro_batch_size default=1
        # with W&B on: WANDB_MODE is exported only from a set wandb_mode, so W&B's own default (online) applies
        "tracking.wandb.mode": ("online", f"{AXOLOTL}/utils/wandb_.py#L8-L18"),
        "tracking.artifacts": (False, f"{INTEGRATIONS}#L709"),  # WandbLogModel(os.getenv("WANDB_LOG_MODEL", "false"))
    },
    "llamafactory": {  # hparams dataclasses; the rest from Transformers' TrainingArguments
        "freeze.strategy": ("lora", f"{LLAMAFACTORY}/finetuning_args.py#L464-L467"),  # finetuning_type default "lora"
        "freeze.lora.alpha": (16, f"{LLAMAFACTORY}/finetuning_args.py#L534"),  # lora_alpha or lora_rank * 2
        "freeze.lora.r": (8, f"{LLAMAFACTORY}/finetuning_args.py#L77-L80"),  # lora_rank default 8
        "freeze.lora.dropout": (0.0, f"{LLAMAFACTORY}/finetuning_args.py#L73-L76"),  # lora_dropout default 0.0
        "data.max_length": (2048, f"{LLAMAFACTORY}/data_args.py#L46-L49"),  # cutoff_len default 2048
        "data.packing": (False, f"{LLAMAFACTORY}/parser.py#L462"),  # packing: None -> stage == "pt"
        "data.eval_fraction": (0.0, f"{LLAMAFACTORY}/data_args.py#L98-L101"),  # val_size default 0.0
        "training.gradient_checkpointing": (True, f"{LLAMAFACTORY}/model_args.py#L144-L147"),  # disable_... = False
        "training.learning_rate": (5e-5, f"{TRANSFORMERS}#L787"),
        "training.epochs": (3.0, f"{TRANSFORMERS}#L778"),
        "training.log_every": (500, f"{TRANSFORMERS}#L1001-L1003"),
        "hardware.precision": ("fp32", f"{TRANSFORMERS}#L874-L876"),  # bf16 (and fp16) default False
        # with report_to: wandb, Transformers' environment unset
        "tracking.wandb.mode": ("online", f"{WANDB_SETTINGS}#L400-L403"),  # mode: ... = Field(default="online")
        "tracking.project": ("huggingface", f"{INTEGRATIONS}#L763"),  # os.getenv("WANDB_PROJECT", "huggingface")
        "tracking.artifacts": (False, f"{INTEGRATIONS}#L709"),
    },
    "torchtune": {  # the model builder's signature and the recipe's cfg.get defaults
        "freeze.lora.r": (8, f"{TORCHTUNE}/torchtune/models/llama2/_model_builders.py#L69"),
        "freeze.lora.alpha": (16, f"{TORCHTUNE}/torchtune/models/llama2/_model_builders.py#L70"),
        "freeze.lora.dropout": (0.0, f"{TORCHTUNE}/torchtune/models/llama2/_model_builders.py#L71"),
        "training.max_grad_norm": (None, f"{TORCHTUNE}/recipes/lora_finetune_single_device.py#L174"),
        "data.packing": (False, f"{TORCHTUNE}/torchtune/datasets/_alpaca.py#L24"),
        "data.max_length": (4096, f"{TORCHTUNE}/torchtune/models/llama2/_model_builders.py#L109"),
        "training.log_every": (1, f"{TORCHTUNE}/recipes/lora_finetune_single_device.py#L150"),
        # WandBLogger(project: str = "torchtune", ...) hands wandb.init no mode unless given one
        "tracking.project": ("torchtune", f"{TORCHTUNE}/torchtune/training/metric_logging.py#L264"),
        "tracking.wandb.mode": ("online", f"{TORCHTUNE}/torchtune/training/metric_logging.py#L290-L296"),
    },
    "ultralytics": {  # ultralytics/cfg/default.yaml
        "training.epochs": (100, f"{ULTRALYTICS}#L12"),
        "training.batch_size": (16, f"{ULTRALYTICS}#L15"),
        "training.seed": (0, f"{ULTRALYTICS}#L29"),
        "training.learning_rate": (0.01, f"{ULTRALYTICS}#L94"),
        "hardware.dataloader_workers": (8, f"{ULTRALYTICS}#L21"),
    },
}

MINIMAL = {  # the least each tool needs; every other key is left to the tool's default
    "axolotl": "base_model: NousResearch/Llama-2-7b-hf\nadapter: lora\nlearning_rate: 2e-4\n"
               "datasets:\n  - {path: data/train.jsonl, type: alpaca}\n",
    "llamafactory": "model_name_or_path: meta-llama/Meta-Llama-3-8B\ndataset: data/train.jsonl\n",
    "torchtune": "model:\n  _component_: torchtune.models.llama2.lora_llama2_7b\n  lora_attn_modules: [q_proj, v_proj]\n"
                 "dataset:\n  _component_: torchtune.datasets.alpaca_dataset\n"
                 "optimizer: {_component_: torch.optim.AdamW, lr: 3e-4}\n"
                 "lr_scheduler: {_component_: torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup}\n",
    "ultralytics": "model: yolo11n.pt\ndata: data/coco8.yaml\noptimizer: SGD\n",
}


TRACKED = {  # a W&B run, so the tracker defaults apply (tensorboard, mlflow-skinny and wandb are dev dependencies)
    "axolotl": "wandb_project: llama-sft\n",
    "llamafactory": "report_to: wandb\n",
    "torchtune": "metric_logger: {_component_: torchtune.training.metric_logging.WandBLogger}\n",
}


def ftrecipe_default(recipe: Any, dotted: str) -> Any:
    node = recipe
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_source_tools_defaults_are_pinned_cited_and_written_where_ftrecipe_differs(fmt):
    table = get_format(fmt)
    assert {d.target: d.citation for d in table.defaults} == {target: cite for target, (_, cite) in PINNED[fmt].items()}
    assert all(d.value == PINNED[fmt][d.target][0] for d in table.defaults if not callable(d.value))
    result, recipe = imported(fmt, MINIMAL[fmt] + TRACKED.get(fmt, ""))
    notes = comments(recipe)
    assert validate_text(recipe, source="recipe.yaml").ok
    for target, (value, citation) in PINNED[fmt].items():
        assert result.values[target][0] == value, target
        assert notes[target].startswith(f"{table.tool} default where the config sets none: "), notes[target]
        dropped = {target, "freeze.lora"} if target == "freeze.strategy" else {target}  # LoRA keys need a LoRA strategy
        without = validate_text(_without(recipe, dropped), source="recipe.yaml")
        assert without.ok, [d.text() for d in without.diagnostics]
        assert ftrecipe_default(without.recipe, target) != value, f"{target}: ftrecipe's default is the same"
        assert re.search(r"/blob/[\w.]+/.+#L\d+(-L\d+)?$", citation)


def _without(recipe: str, targets: set[str]) -> str:
    """The recipe less the given keys (to read ftrecipe's own default for each)."""
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(recipe)
    for target in targets:
        *parents, last = target.split(".")
        node = data
        for part in parents:
            node = node[part]
        del node[last]
        if not node and parents:  # an emptied section goes too
            parent = data if len(parents) == 1 else data[parents[0]]
            del parent[parents[-1]]
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


@pytest.mark.parametrize("fmt, text, kept", [
    # axolotl: train_on_inputs default False (utils/schemas/training.py#L103), bf16 default "auto" (config.py#L559)
    ("axolotl", "train_on_inputs: false\nbf16: auto\n", {"train_on_inputs"}),
    # LLaMA-Factory: train_on_prompt default False (hparams/data_args.py#L50); lora_target "all" (finetuning_args.py#L81)
    ("llamafactory", "train_on_prompt: false\nlora_target: all\n", {"train_on_prompt"}),
    ("torchtune", "dataset: {_component_: torchtune.datasets.alpaca_dataset, train_on_input: false}\n",
     {"dataset.train_on_input"}),
    # Ultralytics: amp default True (default.yaml#L36): fp16 autocast on CUDA only, as ftrecipe's precision auto
    ("ultralytics", "amp: true\ncos_lr: false\n", {"amp"}),
])
def test_the_defaults_that_equal_ftrecipes_mean_the_same_there(fmt, text, kept):
    """Loss on completions only, the precision, LoRA's targets: what each tool does by default is what ftrecipe does."""
    base = MINIMAL[fmt].replace("dataset:\n  _component_: torchtune.datasets.alpaca_dataset\n", "")
    result, recipe = imported(fmt, base + text)
    assert kept <= {key for key, _ in result.kept}
    assert not [d for d in result.dropped if d.key in kept or d.key.endswith("train_on_input")]
    assert result.values.get("hardware.precision", ("auto",))[0] == ("fp32" if fmt == "llamafactory" else "auto")
    if fmt == "llamafactory":
        assert result.values["freeze.lora.target_modules"][0] == "all-linear"
    assert validate_text(recipe, source="recipe.yaml").ok


@pytest.mark.parametrize("fmt, text, key", [
    ("axolotl", "train_on_inputs: true\n", "train_on_inputs"),
    ("llamafactory", "train_on_prompt: true\n", "train_on_prompt"),
    ("torchtune", "", "dataset.train_on_input"),  # the alpaca builders default to the loss on the prompt
])
def test_a_loss_on_the_prompt_is_not_carried(fmt, text, key):
    result, _ = imported(fmt, MINIMAL[fmt] + text)
    [item] = [d for d in result.dropped if d.key == key]
    assert "completions only" in item.reason
    if not text:
        assert item.kind == "a default that differs" and item.value == ABSENT and item.mark.line == 4


def test_import_stays_torch_free(tmp_path):
    """Importing fifty configs must be quick: no torch, Transformers or Ultralytics on the way."""
    target = tmp_path / "r.yaml"
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "ftrecipe", "import", "axolotl",
                          str(CONFIGS / "axolotl" / "llama-2-qlora.yml"), "-o", str(target)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and target.exists(), out.stderr[-2000:]
    modules = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "import time:" in line}
    assert "ftrecipe" in modules and not modules & {"torch", "transformers", "ultralytics", "peft", "accelerate", "datasets"}


def test_axolotl_lora_without_rank_alpha_or_targets_says_what_the_recipe_takes_instead():
    """axolotl has no rank or alpha default (None goes to PEFT as is, utils/schemas/peft.py#L53-L54) and leaves the
    targets to PEFT's per-architecture table (LLaMA: q_proj and v_proj), where ftrecipe's default is all-linear."""
    result, recipe = imported("axolotl", MINIMAL["axolotl"])
    assert {(d.key, d.kind) for d in result.dropped} == {("lora_r", "a default that differs"),
                                                          ("lora_alpha", "a default that differs")}
    assert "the recipe takes ftrecipe's alpha: 32" in recipe
    assert result.values["freeze.lora.target_modules"][0] == ["q_proj", "v_proj"]
    assert comments(recipe)["freeze.lora.target_modules"] == "axolotl default where the config sets none: PEFT's targets for llama"


# ---------------------------------------------------------------- experiment trackers


def tracking(result: Imported) -> dict[str, Any]:
    """The recipe's tracking keys (without the section's name) and their values."""
    return {key.removeprefix("tracking."): value for key, (value, _) in result.values.items() if key.startswith("tracking.")}


def test_axolotl_trackers_become_the_tracking_section_logged_online_as_axolotl_does(real):
    """wandb_project turns W&B on (utils/wandb_.py#L16-L18); without wandb_mode W&B logs online, so the recipe says
    online (ftrecipe's default is offline); an MLflow experiment named like the W&B project is the same project."""
    result, recipe, _ = real["axolotl/trackers.yml"]
    assert tracking(result) == {"backends": ["wandb", "tensorboard", "mlflow"], "project": "llama-2-sft",
                                "wandb.entity": "my-team", "wandb.mode": "online", "run_name": "lora-r16",
                                "artifacts": True, "mlflow.tracking_uri": "http://127.0.0.1:5000"}
    notes = comments(recipe)
    assert notes["tracking.backends"] == ("from: wandb_project: llama-2-sft; use_tensorboard: true; use_mlflow: true; "
                                          "mlflow_experiment_name: llama-2-sft")
    assert notes["tracking.project"] == "from: wandb_project: llama-2-sft; mlflow_experiment_name: llama-2-sft"
    assert notes["tracking.wandb.mode"] == "axolotl default where the config sets none: wandb_mode: null: W&B's own default, online"
    assert notes["tracking.artifacts"] == "from: wandb_log_model: end"
    assert [(d.key, d.mark.line) for d in result.dropped] == [("wandb_watch", 17)]
    assert "histograms" in result.dropped[0].reason
    assert "wandb_name" in dict(result.kept)["mlflow_run_name"] and "wandb_run_id" in result.empty
    assert validate_text(recipe, source="recipe.yaml").recipe.tracking.wandb.mode == "online"


@pytest.mark.parametrize("text, expected, kept", [
    ("wandb_project: p\nwandb_mode: offline\n", {"backends": ["wandb"], "project": "p", "wandb.mode": "offline",
                                                "artifacts": False}, set()),
    ("wandb_project: p\nwandb_mode: disabled\nwandb_entity: t\n", {}, {"wandb_project", "wandb_mode", "wandb_entity"}),
    ("wandb_project: p\nwandb_run_id: abc123\n", {"backends": ["wandb"], "project": "p", "run_name": "abc123",
                                                  "wandb.mode": "online", "artifacts": False}, set()),
    ("mlflow_experiment_name: exp\nmlflow_run_name: r\nhf_mlflow_log_artifacts: true\nwandb_name: unused\n",
     {"backends": ["mlflow"], "project": "exp", "run_name": "r", "artifacts": True}, {"wandb_name"}),
    ("use_tensorboard: true\nuse_mlflow: false\n", {"backends": ["tensorboard"]}, {"use_mlflow"}),
])
def test_axolotl_tracker_keys_mean_in_the_recipe_what_they_mean_in_axolotl(text, expected, kept):
    result, recipe = imported("axolotl", MINIMAL["axolotl"] + text)
    assert tracking(result) == expected
    assert kept <= {key for key, _ in result.kept}
    assert not [d for d in result.dropped if d.key not in ("lora_r", "lora_alpha")]
    assert validate_text(recipe, source="recipe.yaml").ok


def test_axolotl_trackers_that_disagree_are_reported_not_merged():
    """One recipe switch for the model upload, one project for every tracker."""
    text = ("wandb_project: p\nwandb_log_model: end\nuse_mlflow: true\nhf_mlflow_log_artifacts: false\n"
            "mlflow_experiment_name: other\nwandb_watch: all\n")
    result, recipe = imported("axolotl", MINIMAL["axolotl"] + text)
    assert tracking(result)["artifacts"] is True and tracking(result)["project"] == "p"
    assert tracking(result)["backends"] == ["wandb", "mlflow"]
    dropped = {d.key: d.reason for d in result.dropped}
    assert "tracking.artifacts is already True" in dropped["hf_mlflow_log_artifacts"] and "wandb_watch" in dropped
    assert "named p (wandb_project)" in dict(result.notes)["mlflow_experiment_name"]
    assert validate_text(recipe, source="recipe.yaml").ok


def test_llamafactory_report_to_carries_ftrecipes_trackers_and_names_the_others(real):
    """Transformers' report_to (default "none", training_args.py#L1059-L1064): W&B with its environment unset logs
    online to the project huggingface, and no tracker uploads the model; SwanLab is not one of ftrecipe's trackers."""
    result, recipe, _ = real["llamafactory/trackers.yaml"]
    assert tracking(result) == {"backends": ["wandb", "mlflow"], "run_name": "llama3-lora", "wandb.mode": "online",
                                "project": "huggingface", "artifacts": False}
    notes = comments(recipe)
    assert notes["tracking.backends"] == 'from: report_to: ["wandb", "mlflow", "swanlab"]'
    assert notes["tracking.wandb.mode"].startswith("LLaMA-Factory default where the config sets none: WANDB_MODE: ")
    [item] = result.dropped
    assert (item.key, item.mark.line) == ("report_to", 9) and item.reason.startswith("swanlab: ftrecipe's trackers are")
    assert "#   report_to: " in recipe


@pytest.mark.parametrize("text, expected, dropped", [
    ("report_to: tensorboard\nrun_name: r\n", {"backends": ["tensorboard"], "run_name": "r"}, None),
    ("report_to: [mlflow]\n", {"backends": ["mlflow"], "artifacts": False}, None),
    ("report_to: [none]\nrun_name: r\n", {}, None),
    ("report_to: all\n", {}, "every tracker installed"),
    ("report_to: comet_ml\n", {}, "comet_ml: ftrecipe's trackers are"),
])
def test_llamafactory_report_to_values(text, expected, dropped):
    result, recipe = imported("llamafactory", MINIMAL["llamafactory"] + text)
    assert tracking(result) == expected
    reasons = [d.reason for d in result.dropped if d.key == "report_to"]
    assert reasons == [] if dropped is None else (len(reasons) == 1 and dropped in reasons[0]), reasons
    assert validate_text(recipe, source="recipe.yaml").ok


def test_torchtune_wandb_logger_becomes_the_tracking_section(real):
    """WandBLogger passes its arguments to wandb.init (metric_logging.py#L290-L296): no mode means W&B's online."""
    result, recipe, _ = real["torchtune/trackers.yaml"]
    assert tracking(result) == {"backends": ["wandb"], "artifacts": False, "project": "llama2-lora",
                                "wandb.entity": "my-team", "wandb.mode": "online", "tags": ["lora", "alpaca"]}
    notes = comments(recipe)
    assert notes["tracking.backends"] == "from: metric_logger._component_: torchtune.training.metric_logging.WandBLogger"
    assert notes["tracking.wandb.mode"].startswith("torchtune default where the config sets none: metric_logger.mode: ")
    assert [(d.key, d.mark.line) for d in result.dropped] == [("metric_logger.group", 19)]
    assert "metric_logger.log_dir" in dict(result.kept)


@pytest.mark.parametrize("logger, expected, dropped", [
    ("{_component_: torchtune.training.metric_logging.MLFlowLogger, experiment_name: e, tracking_uri: 'sqlite:///m.db', "
     "run_name: r}", {"backends": ["mlflow"], "artifacts": False, "project": "e", "mlflow.tracking_uri": "sqlite:///m.db",
                      "run_name": "r"}, []),
    ("{_component_: torchtune.training.metric_logging.TensorBoardLogger, log_dir: /tmp/tb, organize_logs: true}",
     {"backends": ["tensorboard"]}, []),
    ("{_component_: torchtune.training.metric_logging.WandBLogger, project: p, mode: offline}",
     {"backends": ["wandb"], "artifacts": False, "project": "p", "wandb.mode": "offline"}, []),
    ("{_component_: torchtune.training.metric_logging.TensorBoardLogger, log_dir: /tmp/tb, project: p}",
     {"backends": ["tensorboard"]}, ["metric_logger.project"]),
    ("{_component_: torchtune.training.metric_logging.CometLogger, project: p}", {}, ["metric_logger._component_",
                                                                                      "metric_logger.project"]),
])
def test_torchtune_metric_loggers(logger, expected, dropped):
    result, recipe = imported("torchtune", MINIMAL["torchtune"] + f"metric_logger: {logger}\n")
    assert tracking(result) == expected
    assert [d.key for d in result.dropped if d.key.startswith("metric_logger")] == dropped
    if "metric_logger.project" in dropped:
        assert ("which is not carried" if "Comet" in logger else "not an argument of torchtune's TensorBoardLogger") in \
            next(d.reason for d in result.dropped if d.key == "metric_logger.project")
    assert validate_text(recipe, source="recipe.yaml").ok
