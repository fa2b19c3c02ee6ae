"""Offline WER/CER metrics against hand-computed values."""

from __future__ import annotations

import evaluate
import pytest
from ftrecipe_whisper.metrics import METRICS, load_metric, metric_path


def test_wer_hand_computed() -> None:
    wer = load_metric("wer")
    # ref "the cat sat" vs hyp "the cat sat down": 1 insertion / 3 words
    assert wer.compute(predictions=["the cat sat down"], references=["the cat sat"]) == pytest.approx(1 / 3)
    # corpus level: (1 sub) + (1 del) over 3 + 2 reference words = 2 / 5, not the mean of 1/3 and 1/2
    value = wer.compute(predictions=["a x c", "d"], references=["a b c", "d e"])
    assert value == pytest.approx(2 / 5)
    assert wer.compute(predictions=["yes"], references=["yes"]) == 0.0


def test_cer_hand_computed() -> None:
    cer = load_metric("CER")
    # "abc" vs "abd": 1 substitution / 3 characters
    assert cer.compute(predictions=["abd"], references=["abc"]) == pytest.approx(1 / 3)
    # "hello world" (11 chars incl. space) vs "helo world": 1 deletion
    assert cer.compute(predictions=["helo world"], references=["hello world"]) == pytest.approx(1 / 11)


def test_loadable_with_evaluate_load_by_path() -> None:
    for name, path in METRICS.items():
        module = evaluate.load(str(path), config_name=name)
        assert isinstance(module, evaluate.Metric), name
    wer = evaluate.load(str(metric_path("wer")), config_name="wer")
    wer.add_batch(predictions=["one two"], references=["one three"])
    wer.add_batch(predictions=["four"], references=["four"])
    assert wer.compute() == pytest.approx(1 / 3)


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        load_metric("bleu")
    with pytest.raises(ValueError):
        load_metric("wer").compute(predictions=[], references=[])
    with pytest.raises(ValueError, match="config_name"):
        evaluate.load(str(metric_path("wer")))
