"""What a modality tells ``ftrecipe plan`` about a recipe's data: typed records, torch-free.

A task returns :class:`PlanData` from :meth:`ftrecipe.plugin.ModalityTask.plan_data`; the plan
compares it with the modality's :class:`DataGuidance` (the seed's minimums) and scales the compute
estimate with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataGuidance:
    """How much data the task usually needs, and who says so (quoted in the plan's warning)."""

    minimum: float
    unit: str
    """``examples``, or a key of :attr:`PlanData.amount` (``images``, ``audio_hours``, ``tokens``)."""
    source: str
    """Where the figure comes from, e.g. ``"the seed: LLaMA-2 7B needs about 1K examples"``."""


@dataclass
class PlanData:
    """The data as the plan sees it, read without loading the model (no tokenizer download)."""

    train_examples: int | None = None
    """None when the data could not be read here (see :attr:`unavailable`)."""
    eval_examples: int | None = None
    """Held-out or separate evaluation examples; 0 when there are none."""
    amount: dict[str, float] = field(default_factory=dict)
    """The modality's measures of size: ``{"tokens": ...}``, ``{"images": ...}``, ``{"audio_hours": ...}``."""
    balance: dict[str, int] = field(default_factory=dict)
    """Examples (or objects) per label where labels exist."""
    guidance: DataGuidance | None = None
    mean_fill: float = 1.0
    """The mean training example's size as a share of the planned (largest) shape, e.g. mean tokens
    over ``max_length``: scales the compute estimate (memory is planned for the largest)."""
    overlap: int | None = None
    """Evaluation examples that also appear in training (None: not checked)."""
    unavailable: str | None = None
    """Why the data could not be read here (a hub dataset, a missing file): the plan says so."""
    warnings: list[str] = field(default_factory=list)

    def amount_of(self, unit: str) -> float | None:
        """The size in ``unit``: ``examples`` or a key of :attr:`amount`."""
        if unit == "examples":
            return None if self.train_examples is None else float(self.train_examples)
        return self.amount.get(unit)
