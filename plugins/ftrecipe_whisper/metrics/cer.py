"""Character error rate as an offline ``evaluate.Metric`` (the hub's ``cer`` needs a download).

Self-contained on purpose: ``evaluate.load(path_to_this_file)`` copies the file into its module
cache and imports it alone, so it may import only installed packages, never this plugin.
"""

import datasets
import evaluate
import jiwer

_DESCRIPTION = (
    "Corpus character error rate: character edits / reference characters (spaces count), "
    "summed over all pairs (not an average of per-utterance rates). Computed with jiwer."
)
_KWARGS = """
Args:
    predictions: list of hypothesis transcripts.
    references: list of reference transcripts, same length.
Returns:
    float: the corpus CER (0.0 is perfect; can exceed 1.0 with many insertions).
Example:
    >>> CER().compute(predictions=["abd"], references=["abc"])
    0.3333333333333333
"""


class CER(evaluate.Metric):
    """Corpus-level character error rate."""

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
            raise ValueError("CER needs at least one reference")
        return float(jiwer.cer(list(references), list(predictions)))
