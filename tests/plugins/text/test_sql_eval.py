"""sql-eval reader: alternative/brace expansion (pure) and the real files (skipped when absent)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from ftrecipe_text.sql_eval import (
    canonical_query,
    expand_column_choices,
    gold_alternatives,
    load_sql_eval,
    split_alternatives,
)


def test_split_alternatives_respects_literals() -> None:
    assert split_alternatives("SELECT 1;SELECT 2;") == ["SELECT 1", "SELECT 2"]
    assert split_alternatives("SELECT ';' FROM t; SELECT 'it''s;' ") == ["SELECT ';' FROM t", "SELECT 'it''s;'"]
    assert split_alternatives(" ; ") == []


def test_expand_column_choices() -> None:
    q = "SELECT {a.x, a.y}, COUNT(*) FROM a GROUP BY {}"
    assert expand_column_choices(q) == [
        "SELECT a.x, a.y, COUNT(*) FROM a GROUP BY a.x, a.y",
        "SELECT a.x, COUNT(*) FROM a GROUP BY a.x",
        "SELECT a.y, COUNT(*) FROM a GROUP BY a.y",
    ]
    assert expand_column_choices(q, all_only=True) == ["SELECT a.x, a.y, COUNT(*) FROM a GROUP BY a.x, a.y"]
    assert expand_column_choices("SELECT 1") == ["SELECT 1"]
    assert len(expand_column_choices("SELECT {a,b,c} FROM t")) == 7  # all non-empty subsets


def test_canonical_and_gold() -> None:
    raw = "SELECT {n.name, n.id} FROM n GROUP BY {};SELECT n.id FROM n GROUP BY n.id;"
    assert canonical_query(raw) == "SELECT n.name, n.id FROM n GROUP BY n.name, n.id"
    golds = gold_alternatives(raw)
    assert golds[0] == canonical_query(raw)
    assert "SELECT n.id FROM n GROUP BY n.id" in golds and "SELECT n.name FROM n GROUP BY n.name" in golds
    assert len(golds) == len(set(golds)) == 3  # the 2nd alternative equals an expansion of the 1st


def test_schemas_come_from_metadata_never_from_gold_queries(tmp_path) -> None:
    (tmp_path / "questions_gen_postgres.csv").write_text(
        "question,query,db_name,query_category,instructions\nHow many?,SELECT COUNT(*) FROM t;,shop,x,\n"
        "Names?,SELECT u.name FROM users u,club,y,Use ILIKE\n",
        encoding="utf-8",
    )
    (tmp_path / "metadata").mkdir()
    meta = {"table_metadata": {"t": [{"column_name": "id", "data_type": "int", "column_description": ""}]}}
    (tmp_path / "metadata" / "shop.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"no table schema for database 'club'.*club\.json"):
        load_sql_eval(tmp_path)
    (tmp_path / "metadata" / "club.json").write_text(json.dumps({"users": [{"column_name": "name", "data_type": "text"},
                                                                           {"column_name": "id", "data_type": "int"}]}))
    shop, club = load_sql_eval(tmp_path)
    assert shop["schema"] == "CREATE TABLE t (id int);"
    assert club["schema"] == "CREATE TABLE users (name text, id int);"  # every column, not only those the gold query uses
    assert club["instructions"] == "Use ILIKE" and shop["query"] == "SELECT COUNT(*) FROM t"


def test_missing_folder_and_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_sql_eval(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="instruct_basic"):
        load_sql_eval(tmp_path, files=("instruct",))
    with pytest.raises(ValueError, match="unknown sql-eval file"):
        load_sql_eval(tmp_path, files=("metadata",))


def test_real_questions_with_their_schemas() -> None:
    """The sample shipped next to the llama recipe: every question gets its database's full schema."""
    rows = load_sql_eval(ROOT / "recipes" / "data" / "sql-eval")
    assert len(rows) == 210
    assert len({r["db_name"] for r in rows}) == 11
    for r in rows:
        assert r["question"] and r["query"]
        assert "{" not in r["query"] and ";" not in r["query"]
        assert r["gold_queries"][0] == r["query"]
        assert r["schema"].startswith("CREATE TABLE")
    with_choices = [r for r in rows if "{" in r["query_raw"]]
    assert with_choices and all(len(r["gold_queries"]) > 1 for r in with_choices)
    assert sum(1 for r in rows if r["instructions"]) == 35


def test_real_instruct_file(sql_eval_dir) -> None:
    rows = load_sql_eval(sql_eval_dir, files=("questions", "instruct"))
    instruct = [r for r in rows if r["source"] == "instruct"]
    assert len(instruct) == 40
    assert {r["db_name"] for r in instruct} == {"broker", "car_dealership", "derm_treatment", "ewallet"}
    broker = next(r for r in instruct if r["db_name"] == "broker")
    assert "sbTransaction" in broker["schema"]
