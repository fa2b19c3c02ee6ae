"""Test signal helpers (a uniquely named module: ``conftest`` names clash across test folders)."""

from __future__ import annotations

import numpy as np


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    """A float32 sine tone."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
