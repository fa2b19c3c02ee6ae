"""Offline ``evaluate`` metrics (accuracy, macro F1, exact match) and a loader.

The hub's metric scripts cannot be fetched here, so each metric is a local
``evaluate.Metric`` module loaded by path; :func:`load_metric` hides the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import evaluate

__all__ = ["METRICS", "metric_path", "load_metric"]

_HERE: Final[Path] = Path(__file__).resolve().parent

#: metric name -> module file in this folder
METRICS: Final[dict[str, str]] = {
    "accuracy": "accuracy.py",
    "f1": "f1.py",
    "exact_match": "exact_match.py",
}


def metric_path(name: str) -> Path:
    """Path of the module file of metric ``name`` (for ``evaluate.load``)."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(METRICS)}")
    return _HERE / METRICS[name]


def load_metric(name: str, **kwargs: object) -> evaluate.Metric:
    """Load a local metric by name through ``evaluate.load`` (no hub access).

    ``kwargs`` go to ``evaluate.load`` (e.g. ``experiment_id``, ``keep_in_memory``).
    """
    import evaluate

    return evaluate.load(str(metric_path(name)), **kwargs)


# Zero-argument loaders referenced by the plugin's Metric records.
def load_exact_match() -> evaluate.Metric:
    return load_metric("exact_match")


load_exact_match_sql = load_exact_match  # the task passes normalizer="sql" for this one


def load_accuracy() -> evaluate.Metric:
    return load_metric("accuracy")


def load_f1() -> evaluate.Metric:
    return load_metric("f1")
