"""Word and character error rates as one offline ``evaluate.Metric`` (the hub's ``wer`` and ``cer`` need a
download, and the hub's ``wer`` script imports jiwer's removed ``compute_measures``).

``evaluate.load(path, config_name="wer")`` or ``config_name="cer"``. Self-contained on purpose:
``evaluate.load`` copies the file into its module cache and imports it alone, so it may import only
installed packages, never this plugin.
"""

import datasets
import evaluate
import jiwer

RATES = {
    "wer": (jiwer.wer, "Corpus word error rate: (substitutions + deletions + insertions) / reference words"),
    "cer": (jiwer.cer, "Corpus character error rate: character edits / reference characters (spaces count)"),
}
_KWARGS = """
Args:
    predictions: list of hypothesis transcripts.
    references: list of reference transcripts, same length.
Returns:
    float: the corpus rate, summed over all pairs (not an average of per-utterance rates); 0.0 is
    perfect, and it can exceed 1.0 with many insertions.
Example:
    >>> evaluate.load("error_rate.py", config_name="wer").compute(predictions=["a b"], references=["a c"])
    0.5
"""


class ErrorRate(evaluate.Metric):
    """Corpus-level word (``wer``) or character (``cer``) error rate, computed with jiwer."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in RATES:
            raise ValueError(f"config_name must be one of {sorted(RATES)}, got {self.config_name!r}")
        return evaluate.MetricInfo(
            description=RATES[self.config_name][1] + ". Computed with jiwer.",
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/jitsi/jiwer"],
        )

    def _compute(self, predictions: list, references: list) -> float:
        if not references:
            raise ValueError(f"{self.config_name.upper()} needs at least one reference")
        return float(RATES[self.config_name][0](list(references), list(predictions)))
