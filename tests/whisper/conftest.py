"""Shared fixtures for the Whisper plugin tests; forces every Hugging Face library offline.

The variables are set at import time, before any test module imports ``datasets``/``evaluate``/
``transformers`` (they read them on import), and HF_HOME points to a throwaway folder so tests
never read or write a real cache.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

_HF_HOME = tempfile.mkdtemp(prefix="ftrecipe-whisper-hf-")
atexit.register(shutil.rmtree, _HF_HOME, True)
os.environ.update(
    HF_HUB_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_EVALUATE_OFFLINE="1",
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HOME=_HF_HOME,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FSDD_ROOT = (REPO_ROOT / ".." / "shared" / "datasets" / "fsdd").resolve()


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
