"""Shared fixtures of the text plugin tests (the offline set-up is the suite's, in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

SQL_EVAL_DIR = SHARED / "sql-eval"


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
