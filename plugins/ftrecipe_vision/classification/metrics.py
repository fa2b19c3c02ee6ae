"""Classification metrics as offline ``evaluate`` modules (the hub's metric scripts are not reachable at run
time), the confusion matrix, and its picture.

The arithmetic is in plain functions (tested on known inputs); the ``evaluate.Metric`` classes the plugin's
``Metric`` records load wrap them. scikit-learn's conventions: macro F1 averages over every class seen in the
predictions or references, a class without true or predicted members scoring 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def accuracy(predictions: Sequence[int], references: Sequence[int]) -> float:
    p, r = np.asarray(predictions), np.asarray(references)
    return float(np.mean(p == r)) if len(r) else 0.0


def top_k_accuracy(ranked: Sequence[Sequence[int]], references: Sequence[int]) -> float:
    """Share of references found among each example's ranked predictions (its top k classes)."""
    if not len(references):
        return 0.0
    return float(np.mean([reference in list(row) for row, reference in zip(ranked, references)]))


def macro_f1(predictions: Sequence[int], references: Sequence[int]) -> float:
    classes = sorted(set(predictions) | set(references))
    if not classes:
        return 0.0
    p, r = np.asarray(predictions), np.asarray(references)
    scores = []
    for c in classes:
        tp, fp, fn = np.sum((p == c) & (r == c)), np.sum((p == c) & (r != c)), np.sum((p != c) & (r == c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def confusion_matrix(predictions: Sequence[int], references: Sequence[int], classes: int) -> np.ndarray:
    """``matrix[true, predicted]`` counts."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(references, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def per_class_accuracy(matrix: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Recall of each class that has evaluation pictures: the share of its pictures classified as it."""
    totals = matrix.sum(axis=1)
    return {name: float(matrix[i, i] / totals[i]) for i, name in enumerate(names) if totals[i]}


def confusion_picture(matrix: np.ndarray, names: Sequence[str], title: str) -> Any:
    """The confusion matrix drawn with matplotlib (counts in the cells), as a PIL image."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    n = len(names)
    side = min(2 + 0.45 * n, 24)
    figure, axes = plt.subplots(figsize=(side + 1.5, side), dpi=100)
    try:
        axes.imshow(matrix, cmap="Blues")
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title(title)
        if n <= 50:
            axes.set_xticks(range(n), labels=names, rotation=90 if n > 6 else 0)
            axes.set_yticks(range(n), labels=names)
        if n <= 20:
            limit = matrix.max() / 2 if matrix.size else 0
            for (i, j), count in np.ndenumerate(matrix):
                axes.text(j, i, str(count), ha="center", va="center", color="white" if count > limit else "black")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


# -- the evaluate modules -------------------------------------------------------------------------------------

def _module(name: str, description: str, ranked: bool, compute: Any) -> Any:
    import datasets
    import evaluate

    prediction = datasets.Sequence(datasets.Value("int64")) if ranked else datasets.Value("int64")

    class ClassificationMetric(evaluate.Metric):
        def _info(self) -> evaluate.MetricInfo:
            features = datasets.Features({"predictions": prediction, "references": datasets.Value("int64")})
            return evaluate.MetricInfo(description=description, citation="", features=features)

        def _compute(self, predictions: list[Any], references: list[int]) -> dict[str, float]:
            return {name: compute(predictions, references)}

    ClassificationMetric.__name__ = f"{name}_metric"
    return ClassificationMetric()


def load_accuracy() -> Any:
    return _module("accuracy", "Share of predicted class ids equal to the reference.", False, accuracy)


def load_top5_accuracy() -> Any:
    """Predictions are each example's five highest-scoring class ids."""
    return _module("top5_accuracy", "Share of references among the five highest-scoring classes.", True, top_k_accuracy)


def load_f1() -> Any:
    return _module("f1", "Macro-averaged F1 over the classes seen.", False, macro_f1)
