"""Offline WER/CER metrics: ``evaluate.Metric`` subclasses loadable by file path, no hub access.

``evaluate.load("wer")`` fetches a script from the hub (and the hub's script imports jiwer's
removed ``compute_measures``), so the plugin ships its own modules and loads them by path.
"""

from __future__ import annotations

from pathlib import Path

import evaluate

__all__ = ["METRICS", "load_metric", "metric_path"]

_HERE = Path(__file__).resolve().parent
#: Metric name -> module file; ``evaluate.load(str(path), config_name=name)`` loads it.
METRICS: dict[str, Path] = {"wer": _HERE / "error_rate.py", "cer": _HERE / "error_rate.py"}


def metric_path(name: str) -> Path:
    """The module file of metric ``name`` (case-insensitive)."""
    key = name.lower()
    if key not in METRICS:
        raise ValueError(f"unknown metric {name!r}; available: {sorted(METRICS)}")
    return METRICS[key]


def load_metric(name: str, **kwargs: object) -> evaluate.EvaluationModule:
    """``evaluate.load`` of a bundled metric by local path (works with ``HF_EVALUATE_OFFLINE=1``)."""
    return evaluate.load(str(metric_path(name)), config_name=name.lower(), **kwargs)  # type: ignore[arg-type]


# Zero-argument loaders referenced by the plugin's Metric records.
def load_wer() -> evaluate.EvaluationModule:
    return load_metric("wer")


def load_cer() -> evaluate.EvaluationModule:
    return load_metric("cer")
