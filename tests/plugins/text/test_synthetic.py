"""Synthetic text-to-SQL: determinism, variety, length, and that every query runs."""

from __future__ import annotations

import sqlite3

from ftrecipe_text.synthetic import PROMPT_TEMPLATE, SCHEMA, synthetic_sql
from ftrecipe_text.formatting import render_example
from ftrecipe_text.tokenization import tokenize_example


def test_deterministic_per_seed() -> None:
    assert synthetic_sql(50, seed=3) == synthetic_sql(50, seed=3)
    assert synthetic_sql(50, seed=3) != synthetic_sql(50, seed=4)
    assert synthetic_sql(10, seed=3) == synthetic_sql(50, seed=3)[:10]  # a prefix is stable
    assert synthetic_sql(0) == []


def test_variety() -> None:
    rows = synthetic_sql(1000, seed=0)
    assert len({r["question"] for r in rows}) > 300
    shapes = {r["query"].split(" WHERE ")[0].split(" ORDER ")[0] for r in rows}
    assert len(shapes) >= 8
    assert all(set(r) == {"question", "query", "schema"} and r["schema"] == SCHEMA for r in rows)


def test_queries_are_valid_sql_on_the_schema() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    for row in synthetic_sql(300, seed=1):
        db.execute(row["query"]).fetchall()


def test_short_enough(tokenizer) -> None:
    for row in synthetic_sql(200, seed=2):
        for text in (row["question"], row["query"]):
            assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 40, text


def test_prompt_template_renders(tokenizer) -> None:
    row = synthetic_sql(1, seed=0)[0]
    prompt, completion = render_example(row, form="completion", columns={"completion": "query"}, template=PROMPT_TEMPLATE)
    assert prompt.endswith(f"-- question: {row['question']}\n-- sql:\n") and SCHEMA in prompt
    assert completion == row["query"]
    assert not tokenize_example(tokenizer, prompt, completion, 512).truncated
