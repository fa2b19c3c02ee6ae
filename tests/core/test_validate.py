"""`ftrecipe validate`: every class of mistake, located at its exact line and column."""

from __future__ import annotations

import json
import textwrap

import pytest

from ftrecipe.validation import validate_text
from tests.conftest import FIXTURES, run_cli

VALID = (FIXTURES / "toy.yaml").read_text()


def check(text: str, registry, overrides=()):
    return validate_text(textwrap.dedent(text), source="r.yaml", overrides=overrides, registry=registry)


def texts(result) -> list[str]:
    return [d.text() for d in result.diagnostics]


def test_valid_recipe_resolves_defaults(example_registry):
    result = check(VALID, example_registry)
    assert result.ok, texts(result)
    recipe = result.recipe
    assert recipe.output.save == "full" and recipe.output.dir == "runs/r"
    assert recipe.evaluation.metrics == ["mse"]
    assert recipe.model.trust_remote_code is False


def test_unknown_key_at_depth_with_did_you_mean(example_registry):
    result = check(
        """\
        model:
          modality: toy-regression
          base: scratch
        data:
          format: synthetic
        training:
          lerning_rate: 0.1
        """,
        example_registry,
    )
    assert texts(result) == ["r.yaml:7:3: training.lerning_rate: unknown key 'lerning_rate' (did you mean 'learning_rate'?)"]


def test_unknown_key_inside_plugin_sections(example_registry):
    result = check(
        """\
        model:
          modality: toy-regression
          base: scratch
          widht: 3
        data:
          format: synthetic
          augment:
            - name: jitter
              sigmaa: 0.1
        """,
        example_registry,
    )
    assert texts(result) == [
        "r.yaml:4:3: model.widht: unknown key 'widht' (did you mean 'width'?)",
        "r.yaml:9:7: data.augment[0].sigmaa: unknown key 'sigmaa' (did you mean 'sigma'?)",
    ]


def test_all_errors_reported_at_once_with_types_ranges_and_enums(example_registry):
    result = check(
        """\
        model:
          modality: toy-regression
          base: scratch
        data:
          format: synthetic
        training:
          batch_size: many
          learning_rate: -1
          scheduler: cosin
        hardware:
          precision: fp64
        """,
        example_registry,
    )
    assert texts(result) == [
        "r.yaml:7:15: training.batch_size: input should be a valid integer, unable to parse string as an integer",
        "r.yaml:8:18: training.learning_rate: input should be greater than 0",
        "r.yaml:9:14: training.scheduler: 'cosin' is not allowed (did you mean 'cosine'?); allowed: linear, cosine, "
        "constant, constant_with_warmup, polynomial, inverse_sqrt",
        "r.yaml:11:14: hardware.precision: 'fp64' is not allowed; allowed: auto, fp32, bf16-mixed, fp16-mixed",
    ]


def test_unknown_modality_and_format(example_registry):
    result = check("model:\n  modality: toy-regresion\n  base: x\ndata:\n  format: synthetic\n", example_registry)
    assert texts(result)[0].startswith("r.yaml:2:13: model.modality: unknown modality 'toy-regresion' (did you mean 'toy-regression'?)")
    result = check("model:\n  modality: toy-regression\n  base: x\ndata:\n  format: synthetc\n", example_registry)
    assert texts(result) == ["r.yaml:5:11: data.format: 'synthetc' is not allowed (did you mean 'synthetic'?); allowed: synthetic"]


def test_missing_required_keys(example_registry):
    result = check("model:\n  modality: toy-regression\ndata:\n  format: synthetic\n", example_registry)
    assert texts(result) == ["r.yaml:1:1: model.base: missing required key 'base'"]
    result = check("data:\n  format: synthetic\n", example_registry)
    assert texts(result) == ["r.yaml:1:1: model: missing required section 'model'"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "r.yaml:1:1: the file is empty: a recipe is a YAML mapping"),
        ("- a\n- b\n", "r.yaml:1:1: a recipe must be a YAML mapping, not a list"),
        ("just a string\n", "r.yaml:1:1: a recipe must be a YAML mapping, not a single value"),
        ("model: {modality: x\n", "r.yaml:2:1: YAML syntax error:"),
        ("model:\n  base: a\n  base: b\n", "r.yaml:3:3: model.base: duplicate key 'base' (first defined at line 2)"),
        (
            "model: !!python/object/apply:os.system ['echo pwned']\n",
            "r.yaml:1:8: model: YAML tag !!python/object/apply:os.system is not allowed: recipes are data, not code",
        ),
    ],
)
def test_yaml_level_problems(example_registry, text, expected):
    result = check(text, example_registry)
    assert not result.ok
    assert texts(result)[0].startswith(expected), texts(result)


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("freeze:\n  strategy: full\n  lora: {r: 8}\n", "r.yaml:8:9: freeze.lora: LoRA settings need strategy lora or qlora"),
        (
            "freeze:\n  strategy: qlora\nhardware:\n  precision: fp32\n",
            "r.yaml:9:14: hardware.precision: QLoRA computes in bfloat16 but precision is fp32",
        ),
        ("freeze:\n  strategy: full\n  freeze: ['a.*']\n", "r.yaml:8:11: freeze.freeze: strategy full trains every parameter"),
        ("output:\n  save: merged\n", "r.yaml:7:9: output.save: save: merged needs a LoRA strategy"),
        ("hardware:\n  accelerator: cpu\n  precision: fp16-mixed\n", "r.yaml:8:14: hardware.precision: fp16-mixed needs CUDA"),
        ("model_extra: 1\n", "r.yaml:6:1: model_extra: unknown key 'model_extra'"),
        ("hardware:\n  accelerator: mps\n  strategy: fsdp\n", "r.yaml:8:13: hardware.strategy: FSDP has no MPS backend"),
        ("hardware:\n  strategy: fsdp\n  precision: fp16-mixed\n", "r.yaml:8:14: hardware.precision: FSDP here trains in bf16-mixed or fp32"),
        ("training:\n  compile: true\nhardware:\n  strategy: fsdp\n", "r.yaml:7:12: training.compile: compiled layers have not been tested under FSDP"),
        ("hardware:\n  accelerator: mps\n  strategy: deepspeed\n", "r.yaml:8:13: hardware.strategy: DeepSpeed has no MPS backend"),
        ("hardware:\n  strategy: deepspeed\n  precision: fp16-mixed\n", "r.yaml:8:14: hardware.precision: fp16 under DeepSpeed"),
        ("training:\n  compile: true\nhardware:\n  strategy: deepspeed\n",
         "r.yaml:7:12: training.compile: compiled layers have not been tested under DeepSpeed"),
        ("freeze:\n  strategy: qlora\ntraining:\n  compile: true\n",
         "r.yaml:9:12: training.compile: torch.compile cannot trace bitsandbytes-quantised weights"),
        ("training:\n  optimizer: paged-adamw-8bit\nhardware:\n  accelerator: cpu\n",
         "r.yaml:7:14: training.optimizer: paged-adamw-8bit pages its state through CUDA memory"),
        ("training:\n  compile: true\nhardware:\n  accelerator: mps\n", "r.yaml:7:12: training.compile: torch.compile has no training backend on MPS"),
    ],
)
def test_contradictions_are_located(example_registry, fragment, expected):
    text = "model:\n  modality: toy-regression\n  base: scratch\ndata:\n  format: synthetic\n" + fragment
    result = check(text, example_registry)
    assert any(t.startswith(expected) for t in texts(result)), texts(result)


LLAMA_SCRATCH = "model:\n  modality: causal-lm\n  base: llama\n  init: scratch\ndata:\n  format: synthetic\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LLAMA_SCRATCH + "freeze:\n  strategy: qlora\nhardware:\n  strategy: fsdp\n",
         "r.yaml:10:13: hardware.strategy: FSDP cannot shard a bitsandbytes-quantised base"),
        (LLAMA_SCRATCH + "freeze:\n  strategy: qlora\nhardware:\n  strategy: deepspeed\n  zero_stage: 3\n",
         "r.yaml:11:15: hardware.zero_stage: ZeRO-3 cannot partition a bitsandbytes-quantised base"),
        ("model:\n  modality: stable-diffusion\n  base: sd\n  init: scratch\ndata:\n  format: synthetic-subject\n"
         "hardware:\n  strategy: deepspeed\n", "r.yaml:8:13: hardware.strategy: stable-diffusion supports strategy ddp or fsdp, not deepspeed"),
        ("model:\n  modality: toy-external\n  base: s\ndata:\n  format: synthetic\nhardware:\n  strategy: fsdp\n",
         "r.yaml:7:13: hardware.strategy: toy-external supports strategy ddp, not fsdp"),
    ],
)
def test_each_modality_says_which_strategies_it_supports(example_registry, text, expected):
    """A strategy the modality has not been run with, or FSDP with what it cannot shard, is refused at
    validate time, located at the key (the README's support table is the same list)."""
    result = check(text, example_registry)
    assert any(t.startswith(expected) for t in texts(result)), texts(result)


def test_plugin_contributed_check(example_registry):
    result = check("model:\n  modality: toy-regression\n  base: s\n  width: 5000\ndata:\n  format: synthetic\n", example_registry)
    assert texts(result) == ["r.yaml:4:10: model.width: width above 4096 will not fit this toy"]


def test_overrides_are_typed_and_located(example_registry):
    result = check(VALID, example_registry, overrides=["training.learning_rate=3e-4", "training.batch_size=4"])
    assert result.ok and result.recipe.training.learning_rate == 3e-4 and result.recipe.training.batch_size == 4
    result = check(VALID, example_registry, overrides=["training.batch_size=lots", "training.lr=1"])
    assert texts(result) == [
        "--set training.batch_size=lots: training.batch_size: input should be a valid integer, unable to parse string as an integer",
        "--set training.lr=1: training.lr: unknown key 'lr'",
    ]
    result = check(VALID, example_registry, overrides=["noequals"])
    assert texts(result) == ["--set noequals: expected dotted.key=value"]
    result = check(VALID, example_registry, overrides=["data.augment.0.p=0.25"])
    assert result.ok and result.recipe.data.augment[0].p == 0.25
    text = "model:\n  modality: text-classification\n  base: bert\n  init: scratch\ndata:\n  format: jsonl\n  train: t.jsonl\n"
    result = check(text, None, overrides=["data.columns.text=body", "model.config.hidden_size=8"])
    assert result.ok and result.recipe.data.columns == {"text": "body"} and result.recipe.model.config == {"hidden_size": 8}


def test_cli_formats_and_exit_codes(tmp_path, example_site):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  modality: toy-regression\n  base: x\ndata:\n  format: synthetic\ntraining:\n  epochz: 1\n")
    good = tmp_path / "good.yaml"
    good.write_text(VALID)
    out = run_cli("validate", str(good), site=example_site)
    assert out.returncode == 0 and "ok (toy-regression)" in out.stdout
    out = run_cli("validate", str(good), str(bad), site=example_site)
    assert out.returncode == 2
    assert f"{bad}:7:3: training.epochz: unknown key 'epochz' (did you mean 'epochs'?)" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    out = run_cli("validate", str(bad), "--format", "github", site=example_site)
    assert out.stdout.strip() == f"::error file={bad},line=7,col=3::training.epochz: unknown key 'epochz' (did you mean 'epochs'?)"
    out = run_cli("validate", str(bad), "--format", "json", site=example_site)
    report = json.loads(out.stdout)
    assert report[0]["valid"] is False and report[0]["diagnostics"][0]["line"] == 7
    out = run_cli("validate", str(tmp_path / "missing.yaml"), site=example_site)
    assert out.returncode == 2 and "no such file" in out.stdout


def test_modality_of_the_wrong_type(example_registry):
    result = check("model:\n  modality: [a]\n  base: x\ndata:\n  format: synthetic\n", example_registry)
    assert texts(result)[0].startswith("r.yaml:2:13: model.modality: must be the name of a modality; allowed:")


def test_a_new_head_needs_labels():
    text = "model:\n  modality: text-classification\n  base: bert\n  init: scratch\ndata:\n  format: synthetic\nhead:\n  mode: replace\n"
    assert texts(check(text, None)) == ["r.yaml:8:9: head.mode: head mode replace needs labels (or num_labels)"]
