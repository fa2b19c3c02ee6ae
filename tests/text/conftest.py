"""Offline settings and shared fixtures for the text plugin tests.

The environment is set at import, before any test module imports transformers,
datasets or evaluate, so nothing here can reach for a hub.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_HF_HOME = tempfile.mkdtemp(prefix="ftrecipe-text-hf-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": _HF_HOME,
    }
)

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
SQL_EVAL_DIR = REPO_ROOT.parent / "shared" / "datasets" / "sql-eval"


@pytest.fixture(scope="session")
def sql_texts() -> list[str]:
    """A few hundred lines of synthetic SQL text to train tiny tokenizers on."""
    from ftrecipe_text.synthetic import SCHEMA, synthetic_sql

    rows = synthetic_sql(400, seed=0)
    return [r["question"] for r in rows] + [r["query"] for r in rows] + [SCHEMA]


@pytest.fixture(scope="session")
def tokenizer(sql_texts: list[str]):
    """A tiny byte-level BPE tokenizer (adds BOS, has a chat template)."""
    from ftrecipe_text.tiny import train_bpe_tokenizer

    return train_bpe_tokenizer(sql_texts, vocab_size=400)


@pytest.fixture(scope="session")
def sql_eval_dir() -> Path:
    if not SQL_EVAL_DIR.is_dir():
        pytest.skip(f"sql-eval dataset not found at {SQL_EVAL_DIR} (shared/ datasets not present)")
    return SQL_EVAL_DIR
