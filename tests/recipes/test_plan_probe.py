"""The plan's static memory and trainable count are what the run allocates and trains, exactly.

For a tiny model of every modality (and the freeze strategies and optimizers that change the
layout: full fine-tuning is also checked by the plugin guide's own tests), `ftrecipe plan --probe 1` runs a real step through `ftrecipe run`'s own machinery and
measures the bytes of the weights (4-bit blocks included), gradients and optimizer states after it,
and the parameters that require gradients: each must equal the estimate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

DEMO = ROOT / "recipes" / "demo"
FEW = ["data.train_size=64"]  # the demos' data, smaller: one step needs little of it
CASES = {
    "llama-full": (DEMO / "llama.yaml", FEW),
    "llama-lora-adamw8bit": (DEMO / "llama.yaml", [*FEW, "freeze.strategy=lora", "training.optimizer=adamw-8bit"]),
    "falcon-qlora": (DEMO / "falcon.yaml", [*FEW, "freeze.strategy=qlora", "hardware.precision=bf16-mixed"]),
    "whisper-frozen-encoder": (DEMO / "whisper.yaml", [*FEW, "freeze.strategy=partial", "freeze.freeze=[model.encoder.*]"]),
    "stable-diffusion-lora": (DEMO / "stable-diffusion.yaml", ["freeze.strategy=lora"]),
    "yolo-full-sgd": (DEMO / "yolo.yaml", ["data.train_size=32", "training.optimizer=sgd"]),
}


def probed(recipe: Path, sets: list[str]) -> dict:
    args = [a for s in sets for a in ("--set", s)]
    result = run_cli("plan", str(recipe), *args, "--probe", "1", "--format", "json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def assert_exact(plan: dict) -> None:
    probe = plan["memory"]["probe"]
    estimated, measured = probe["estimated"], probe["measured"]
    static = ("weights", "gradients", "optimizer", "trainable_parameters")
    assert {k: estimated[k] for k in static} == {k: measured[k] for k in static}
    assert measured["trainable_parameters"] == plan["params"]["trainable"] > 0


@pytest.mark.e2e
@pytest.mark.parametrize("case", CASES)
def test_the_static_plan_is_the_bytes_of_a_real_step(case: str):
    recipe, sets = CASES[case]
    assert_exact(probed(recipe, sets))


@pytest.mark.e2e
def test_text_classification_with_a_new_head(tmp_path: Path):
    from tests.plugins.text.test_runs import tiny_checkpoint, write_jsonl

    base = tiny_checkpoint(tmp_path / "bert", "bert")
    write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": l} for t, l in [("great", "pos"), ("awful", "neg")] * 20])
    recipe = tmp_path / "classify.yaml"
    recipe.write_text(
        f"model:\n  modality: text-classification\n  base: {base}\n"
        "freeze:\n  strategy: transfer\n  unfreeze_top: 1\n"
        "head:\n  mode: replace\n  labels: [neg, pos]\n"
        "data:\n  format: jsonl\n  train: train.jsonl\n  max_length: 16\n"
        "training:\n  batch_size: 4\n  optimizer: adafactor\n  learning_rate: 1.0e-3\n"
        "hardware:\n  accelerator: cpu\n")
    assert_exact(probed(recipe, []))
