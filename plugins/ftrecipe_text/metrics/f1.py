"""F1 (macro by default) as an offline ``evaluate`` metric.

Load with ``evaluate.load("<path>/f1.py")`` or :func:`ftrecipe_text.metrics.load_metric`.
Self-contained (``evaluate.load`` copies this file). Macro F1 averages per-class F1 over
the classes in ``labels`` or, by default, every class seen in predictions or references
(scikit-learn's convention); a class with no true or predicted member scores 0.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

_DESCRIPTION = "F1 score for multi-class classification: macro (default), micro or weighted average."
_KWARGS = """
Args:
    predictions: predicted labels (int or str).
    references: gold labels, same type as predictions.
    average: "macro" (default), "micro" or "weighted".
    labels: classes to average over (default: every class in predictions or references).
Returns:
    {"f1": float}
"""


class F1(evaluate.Metric):
    """Multi-class F1 without scikit-learn."""

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
        average: str = "macro",
        labels: list[Any] | None = None,
    ) -> dict[str, float]:
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        if average not in {"macro", "micro", "weighted"}:
            raise ValueError(f"average must be 'macro', 'micro' or 'weighted', got {average!r}")
        classes = list(labels) if labels is not None else sorted(set(predictions) | set(references), key=repr)
        if not classes:
            return {"f1": 0.0}
        tp = {c: 0 for c in classes}
        fp = {c: 0 for c in classes}
        fn = {c: 0 for c in classes}
        support = {c: 0 for c in classes}
        for p, r in zip(predictions, references):
            if r in support:
                support[r] += 1
            if p == r:
                if p in tp:
                    tp[p] += 1
            else:
                if p in fp:
                    fp[p] += 1
                if r in fn:
                    fn[r] += 1

        def f1(t: int, f_p: int, f_n: int) -> float:
            denom = 2 * t + f_p + f_n
            return 2 * t / denom if denom else 0.0

        if average == "micro":
            return {"f1": f1(sum(tp.values()), sum(fp.values()), sum(fn.values()))}
        scores = {c: f1(tp[c], fp[c], fn[c]) for c in classes}
        if average == "macro":
            return {"f1": sum(scores.values()) / len(classes)}
        total = sum(support.values())
        return {"f1": sum(scores[c] * support[c] for c in classes) / total if total else 0.0}
