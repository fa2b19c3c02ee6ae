"""Offline metrics, loaded by path through ``evaluate.load``, against hand-computed values."""

from __future__ import annotations

import pytest

from ftrecipe_text.metrics import METRICS, load_metric, metric_path
from ftrecipe_text.metrics.exact_match import normalize_sql


@pytest.fixture(scope="module")
def accuracy():
    return load_metric("accuracy")


@pytest.fixture(scope="module")
def f1():
    return load_metric("f1")


@pytest.fixture(scope="module")
def exact_match():
    return load_metric("exact_match")


def test_loaded_through_evaluate_load(accuracy, f1, exact_match) -> None:
    import evaluate

    for metric in (accuracy, f1, exact_match):
        assert isinstance(metric, evaluate.Metric)
    assert set(METRICS) == {"accuracy", "f1", "exact_match"}
    direct = evaluate.load(str(metric_path("accuracy")))
    assert direct.compute(predictions=[1], references=[1]) == {"accuracy": 1.0}
    with pytest.raises(ValueError, match="available"):
        load_metric("bleu")


def test_accuracy(accuracy) -> None:
    assert accuracy.compute(predictions=[1, 0, 1, 1], references=[1, 1, 1, 0]) == {"accuracy": 0.5}
    assert accuracy.compute(predictions=["a", "b", "c"], references=["a", "b", "x"])["accuracy"] == pytest.approx(2 / 3)
    assert accuracy.compute(predictions=[1, 0], references=[1, 1], normalize=False) == {"accuracy": 1.0}
    weighted = accuracy.compute(predictions=[1, 0], references=[1, 1], sample_weight=[3.0, 1.0])
    assert weighted["accuracy"] == pytest.approx(0.75)


def test_f1_macro(f1) -> None:
    # class 0: tp=1 fp=1 fn=0 -> 2/3; class 1: tp=1 fp=0 fn=1 -> 2/3; class 2: tp=0 fp=1 fn=1 -> 0
    preds, refs = [0, 1, 2, 0], [0, 1, 1, 2]
    assert f1.compute(predictions=preds, references=refs)["f1"] == pytest.approx(4 / 9)
    # micro F1 for single-label multi-class equals accuracy
    assert f1.compute(predictions=preds, references=refs, average="micro")["f1"] == pytest.approx(0.5)
    # weighted by support (class 0: 1, class 1: 2, class 2: 1)
    assert f1.compute(predictions=preds, references=refs, average="weighted")["f1"] == pytest.approx((2 / 3 + 4 / 3) / 4)
    # labels restricts the average
    assert f1.compute(predictions=preds, references=refs, labels=[0, 1])["f1"] == pytest.approx(2 / 3)
    assert f1.compute(predictions=["pos", "neg"], references=["pos", "neg"])["f1"] == 1.0
    with pytest.raises(ValueError, match="average"):
        f1.compute(predictions=[0], references=[0], average="samples")


def test_exact_match_normalizers(exact_match) -> None:
    preds = ["SELECT  name\nFROM t;", " select name from t ", "SELECT x FROM t"]
    refs = ["select name from t", "select name from t", "SELECT y FROM t"]
    assert exact_match.compute(predictions=preds, references=refs)["exact_match"] == 0.0
    assert exact_match.compute(predictions=preds, references=refs, normalizer="strip")["exact_match"] == pytest.approx(1 / 3)
    assert exact_match.compute(predictions=preds, references=refs, normalizer="sql")["exact_match"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="normalizer"):
        exact_match.compute(predictions=["a"], references=["a"], normalizer="lower")


def test_exact_match_multiple_references(exact_match) -> None:
    result = exact_match.compute(
        predictions=["SELECT b FROM t;", "SELECT c FROM t"],
        references=[["SELECT a FROM t", "select b from t"], ["SELECT a FROM t"]],
        normalizer="sql",
    )
    assert result["exact_match"] == 0.5


def test_normalize_sql() -> None:
    assert normalize_sql("  SELECT *\n\tFROM t ;; ") == "select * from t"
    assert normalize_sql("a;b;") == "a;b"
