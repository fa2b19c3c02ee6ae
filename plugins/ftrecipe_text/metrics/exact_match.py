"""Exact match as an offline ``evaluate`` metric, with an SQL-friendly normaliser.

Load with ``evaluate.load("<path>/exact_match.py")`` or
:func:`ftrecipe_text.metrics.load_metric`. Self-contained (``evaluate.load`` copies this
file). A reference may be one string or a list of acceptable strings (e.g. sql-eval's
alternative gold queries): a prediction counts if it matches any of them.

Normalisers (``normalizer=``):
  * ``"none"``: compare as is.
  * ``"strip"``: strip surrounding whitespace.
  * ``"sql"``: strip, collapse whitespace runs to one space, drop trailing semicolons,
    compare case-insensitively (``casefold``). Case-folding also touches string
    literals (``'Sales'`` == ``'sales'``): a textual, not semantic, comparison.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import datasets
import evaluate

_DESCRIPTION = "Fraction of predictions exactly equal (after normalisation) to a reference."
_KWARGS = """
Args:
    predictions: generated strings.
    references: gold strings, or lists of acceptable gold strings.
    normalizer: "none" (default), "strip" or "sql".
Returns:
    {"exact_match": float}
"""

_WS = re.compile(r"\s+")


def normalize_sql(text: str) -> str:
    """Whitespace-collapsed, case-folded text without trailing semicolons."""
    text = _WS.sub(" ", text).strip()
    text = text.rstrip("; ").rstrip()
    return text.casefold()


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "none": lambda s: s,
    "strip": str.strip,
    "sql": normalize_sql,
}


class ExactMatch(evaluate.Metric):
    """Exact match with optional normalisation and multiple references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=[
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
            ],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str] | list[list[str]],
        normalizer: str = "none",
    ) -> dict[str, float]:
        if normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {', '.join(NORMALIZERS)}, got {normalizer!r}")
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        if not predictions:
            return {"exact_match": 0.0}
        norm = NORMALIZERS[normalizer]
        hits = 0
        for pred, ref in zip(predictions, references):
            golds = [ref] if isinstance(ref, str) else list(ref)
            p = norm(pred)
            hits += any(p == norm(g) for g in golds)
        return {"exact_match": hits / len(predictions)}
