"""Word error rate as an offline ``evaluate.Metric`` (the hub's ``wer`` needs a download and jiwer 3).

Self-contained on purpose: ``evaluate.load(path_to_this_file)`` copies the file into its module
cache and imports it alone, so it may import only installed packages, never this plugin.
"""

import datasets
import evaluate
import jiwer

_DESCRIPTION = (
    "Corpus word error rate: (substitutions + deletions + insertions) / reference words, "
    "summed over all pairs (not an average of per-utterance rates). Computed with jiwer."
)
_KWARGS = """
Args:
    predictions: list of hypothesis transcripts.
    references: list of reference transcripts, same length.
Returns:
    float: the corpus WER (0.0 is perfect; can exceed 1.0 with many insertions).
Example:
    >>> WER().compute(predictions=["a b"], references=["a c"])
    0.5
"""


class WER(evaluate.Metric):
    """Corpus-level word error rate."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/jitsi/jiwer"],
        )

    def _compute(self, predictions: list, references: list) -> float:
        if not references:
            raise ValueError("WER needs at least one reference")
        return float(jiwer.wer(list(references), list(predictions)))
