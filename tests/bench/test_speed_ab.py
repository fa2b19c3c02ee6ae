"""bench/speed_ab.py --tiny on the CPU: the hand-written baseline and `ftrecipe run` with its speed switches
train the same tokens from the same weights, and the report carries the ratios and goals the GPU run records."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import OFFLINE, ROOT

pytestmark = pytest.mark.e2e  # two tiny trainings in subprocesses, about 40 s

RATIOS = {"tokens_per_second_ratio", "peak_memory_saving", "longest_seq_ratio"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[dict, str]:
    """One tiny LoRA A/B (about 35 s on two cores): the JSON report and the table."""
    work = tmp_path_factory.mktemp("speed-ab")
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "speed_ab.py"), "--tiny", "--mode", "lora",
                             "--ablation", "--workdir", str(work)],
                            capture_output=True, text=True, timeout=600, cwd=work, env={**os.environ, **OFFLINE})
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stderr[-3000:]
    report = json.loads(lines[-1])
    assert result.returncode == 0, result.stderr[-3000:]
    return report, result.stderr


def test_both_arms_train_the_same_tokens(tiny):
    report, _ = tiny
    baseline, ours = report["baseline"], report["ftrecipe"]
    assert baseline["steps"] >= 3 and ours["steps"] >= 3
    # one pass over the same examples: every word is one token of the shared tokenizer, nothing is truncated
    assert baseline["tokens"] == ours["tokens"] == report["data"]["tokens"]
    # the same tokens a step: ftrecipe packs the baseline's batch into fewer, full rows
    assert report["batch"]["ftrecipe_rows"] < report["batch"]["baseline_examples"]
    assert abs(ours["steps"] - baseline["steps"]) <= 2
    assert report["checks"] == {"both_ran": True, "same_tokens": True, "first_loss_close": True}


def test_the_first_losses_agree(tiny):
    """Same weights (one saved checkpoint): the mean cross-entropy of step 1 is about ln(vocabulary) in both."""
    report, _ = tiny
    vocab = report["data"]["vocab"]
    for arm in ("baseline", "ftrecipe"):
        first, last = report[arm]["first_loss"], report[arm]["last_loss"]
        assert math.isfinite(first) and math.isfinite(last)
        assert abs(first - math.log(vocab)) < 0.1, (arm, first)
    assert math.isclose(report["baseline"]["first_loss"], report["ftrecipe"]["first_loss"], rel_tol=0.01)


def test_the_switches_were_on(tiny):
    report, _ = tiny
    assert report["switches"] == {"packing": True, "loss": "chunked", "kernels": "none", "compile": False,
                                  "attn_implementation": "sdpa", "optimizer": "adamw"}
    applied = report["ftrecipe"]["switches_applied"]
    assert applied["loss"] == "chunked" and applied["attention"] == "sdpa" and applied["compile"] is False


def test_the_report_has_its_ratios_and_goals(tiny):
    report, table = tiny
    assert set(report["ratios"]) == RATIOS
    assert report["ratios"]["tokens_per_second_ratio"] > 0
    assert report["ratios"]["peak_memory_saving"] is None and report["ratios"]["longest_seq_ratio"] is None  # CPU
    for arm in ("baseline", "ftrecipe"):
        assert report[arm]["tokens_per_second"] > 0 and report[arm]["peak_memory_gib"] is None
    assert len(report["goals"]) == 3 and set(report["goals"].values()) == {"n/a"}  # tiny CPU sizes measure no goal
    assert report["versions"]["torch"] and report["device"] == "cpu"
    assert "speed_ab tiny lora on cpu" in table and "ratios: tokens/s" in table


def test_the_ablation_says_which_switch_pays(tiny):
    """--ablation: packing alone, packing with each other switch of the set, and all of them, each as ratios
    against the one baseline. On the CPU's set the chunked loss is the only other switch, so "packing + loss
    chunked" is the full set: the main arm, reported as "all"."""
    report, _ = tiny
    ablation = report["ablation"]
    assert list(ablation) == ["packing", "all"]
    for name, arm in ablation.items():
        assert arm["tokens_per_second"] > 0 and arm["tokens_per_second_ratio"] > 0, name
    assert ablation["all"]["tokens_per_second"] == report["ftrecipe"]["tokens_per_second"]


def test_the_ablation_variants_turn_on_one_switch_at_a_time():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from speed_ab import ablation_variants
    finally:
        sys.path.remove(str(ROOT / "bench"))
    full = {"packing": True, "loss": "fused", "kernels": "liger", "compile": False, "attn_implementation": "flash_attention_2",
            "optimizer": "adamw"}
    variants = ablation_variants(full)
    assert list(variants) == ["packing", "packing + loss fused", "packing + kernels liger",
                              "packing + attn_implementation flash_attention_2"]
    assert variants["packing"] == {**full, "loss": "standard", "kernels": "none", "attn_implementation": "sdpa"}
    assert variants["packing + kernels liger"] == {**variants["packing"], "kernels": "liger"}
