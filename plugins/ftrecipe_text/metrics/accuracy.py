"""Accuracy as an offline ``evaluate`` metric (the hub's script cannot be fetched here).

Load with ``evaluate.load("<path>/accuracy.py")`` or
:func:`ftrecipe_text.metrics.load_metric`. Self-contained: ``evaluate.load`` copies this
file into its module cache, so it imports nothing from the package.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

_DESCRIPTION = "Fraction of predictions equal to their reference (labels may be ints or strings)."
_KWARGS = """
Args:
    predictions: predicted labels (int or str).
    references: gold labels, same type as predictions.
    normalize: if True (default) the fraction correct, else the count correct.
    sample_weight: optional per-example weights.
Returns:
    {"accuracy": float}
"""


class Accuracy(evaluate.Metric):
    """Plain accuracy; no scikit-learn dependency."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(
        self,
        predictions: list[Any],
        references: list[Any],
        normalize: bool = True,
        sample_weight: list[float] | None = None,
    ) -> dict[str, float]:
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        weights = [1.0] * len(predictions) if sample_weight is None else [float(w) for w in sample_weight]
        if len(weights) != len(predictions):
            raise ValueError("sample_weight must have one weight per prediction")
        correct = sum(w for p, r, w in zip(predictions, references, weights) if p == r)
        if not normalize:
            return {"accuracy": float(correct)}
        total = sum(weights)
        return {"accuracy": correct / total if total else 0.0}
