"""Shared fixtures of the Stable Diffusion plugin tests (the offline set-up is the suite's, in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

DOG = SHARED / "dreambooth" / "dataset" / "dog"


@pytest.fixture
def dog_photos() -> Path:
    """The DreamBooth dataset's real `dog` photos, or a skip saying where they were looked for."""
    if not DOG.is_dir():
        pytest.skip(f"DreamBooth dog photos not found at {DOG} (expected ../shared/datasets/dreambooth/dataset/dog)")
    return DOG


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """A tiny pipeline saved once for the session's unit tests."""
    from ftrecipe_diffusion.tiny import build_tiny_pipeline

    return build_tiny_pipeline(["a photo of sks dog", "a photo of dog"], tmp_path_factory.mktemp("tiny-sd"), seed=0)
