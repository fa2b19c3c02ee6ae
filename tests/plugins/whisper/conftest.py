"""Shared fixtures of the Whisper plugin tests (the offline set-up is the suite's, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import SHARED

FSDD_ROOT = SHARED / "fsdd"


@pytest.fixture
def fsdd_root() -> Path:
    """The real Free Spoken Digit Dataset, or a skip saying where it was looked for."""
    if not (FSDD_ROOT / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD_ROOT} (expected ../shared/datasets/fsdd/recordings from the repo root)")
    return FSDD_ROOT


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    """Write a WAV under tmp_path: ``write_wav(name, data, sr, subtype="PCM_16")``."""

    def _write(name: str, data: np.ndarray, sr: int = 16_000, subtype: str = "PCM_16") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), data, sr, subtype=subtype)
        return path

    return _write
