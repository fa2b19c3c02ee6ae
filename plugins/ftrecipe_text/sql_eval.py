"""Reader for the defog sql-eval PostgreSQL questions and their table schemas.

The folder (``recipes/data/sql-eval/`` ships one) holds:

* ``questions_gen_postgres.csv``: question, query, db_name, query_category, instructions
  (210 rows over 11 databases);
* ``instruct_basic_postgres.csv`` (optional): db_name, query_category, question, query;
* ``metadata/<db_name>.json``: each database's tables and typed columns, from defog-data
  (``{"table_metadata": {table: [{column_name, data_type, column_description}]}}``, or the
  bare table mapping). The prompt shows a database's full schema as ``CREATE TABLE`` lines, as
  sql-eval itself does; a question whose database has no schema file is an error, never a
  schema guessed from the gold queries (which would leak part of the answer).

Gold queries use two notations, resolved here:

* several acceptable queries separated by ``;`` (split outside string literals);
* ``{a, b}`` column choices meaning "any non-empty subset of these columns, in this
  order", with ``{}`` later in the same query (``GROUP BY {}``) repeating the choice.

Each row's ``query`` is the *canonical* gold: the first alternative with every choice set
to *all* listed columns (the most informative training target). ``gold_queries`` lists
every expansion of every alternative, canonical first; ``exact_match_sql`` accepts any.
Pure Python.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

__all__ = [
    "QUESTION_FILES",
    "split_alternatives",
    "expand_column_choices",
    "gold_alternatives",
    "canonical_query",
    "load_sql_eval",
]


QUESTION_FILES: Final[dict[str, str]] = {
    "questions": "questions_gen_postgres.csv",
    "instruct": "instruct_basic_postgres.csv",
}

_GROUP = re.compile(r"\{([^{}]*)\}")


def split_alternatives(query: str) -> list[str]:
    """Split ``query`` on ``;`` outside single-quoted literals; drop empty parts, keep no ``;``."""
    parts: list[str] = []
    buf: list[str] = []
    in_quote = False
    for ch in query:
        if ch == "'":
            in_quote = not in_quote  # '' inside a literal toggles twice: still correct
        if ch == ";" and not in_quote:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return [p.strip() for p in parts if p.strip()]


def _choices(group: str) -> list[str]:
    return [c.strip() for c in group.split(",") if c.strip()]


def expand_column_choices(query: str, *, all_only: bool = False) -> list[str]:
    """Expand ``{a, b}`` column choices in one query (no ``;`` alternatives).

    Every distinct non-empty group takes each non-empty subset of its columns (kept in the
    written order); ``{}`` repeats the nearest preceding group's choice. With ``all_only``
    only the full-column expansion is returned. A query without groups is returned as is.
    """
    matches = list(_GROUP.finditer(query))
    distinct = list(dict.fromkeys(m.group(1).strip() for m in matches if m.group(1).strip()))
    if not distinct:
        return [_GROUP.sub("", query)] if matches else [query]
    options: list[list[str]] = []
    for group in distinct:
        cols = _choices(group)
        if all_only:
            options.append([", ".join(cols)])
        else:
            subsets = [c for r in range(len(cols), 0, -1) for c in itertools.combinations(cols, r)]
            options.append([", ".join(s) for s in subsets])
    results: list[str] = []
    for picked in itertools.product(*options):
        choice = dict(zip(distinct, picked))
        out: list[str] = []
        last = ""
        pos = 0
        for m in matches:
            out.append(query[pos : m.start()])
            key = m.group(1).strip()
            if key:
                last = choice[key]
            out.append(last)
            pos = m.end()
        out.append(query[pos:])
        results.append("".join(out))
    return list(dict.fromkeys(results))


def gold_alternatives(query: str) -> list[str]:
    """Every acceptable gold query (``;`` alternatives x column choices), canonical first."""
    canonical = canonical_query(query)
    expanded = [q for alt in split_alternatives(query) for q in expand_column_choices(alt)]
    return list(dict.fromkeys([canonical, *expanded]))


def canonical_query(query: str) -> str:
    """The first ``;`` alternative with every column choice set to all its columns."""
    alternatives = split_alternatives(query)
    if not alternatives:
        return ""
    return expand_column_choices(alternatives[0], all_only=True)[0]


# --- schemas ---------------------------------------------------------------------------


def _schema_from_metadata(path: Path) -> str:
    data = json.loads(path.read_text(encoding="utf-8"))
    tables = data.get("table_metadata", data) if isinstance(data, dict) else {}
    lines = []
    for table, columns in tables.items():
        cols = []
        for c in columns if isinstance(columns, list) else []:
            name = c.get("column_name", "")
            kind = c.get("data_type", "")
            cols.append(f"{name} {kind}".strip())
        lines.append(f"CREATE TABLE {table} ({', '.join(cols)});")
    return "\n".join(lines)


def _read_csv(path: Path, source: str) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        raw = list(csv.DictReader(fh))
    rows = []
    for r in raw:
        rows.append(
            {
                "question": r["question"].strip(),
                "query_raw": r["query"],
                "query": canonical_query(r["query"]),
                "gold_queries": gold_alternatives(r["query"]),
                "db_name": r["db_name"],
                "query_category": r.get("query_category", ""),
                "instructions": (r.get("instructions") or "").strip(),
                "source": source,
            }
        )
    return rows


def load_sql_eval(root: str | Path, *, files: Sequence[str] = ("questions",)) -> list[dict[str, Any]]:
    """Load sql-eval questions as dicts.

    Each row has ``question``, ``query`` (canonical gold), ``gold_queries`` (all accepted
    golds), ``query_raw`` (as written), ``db_name``, ``query_category``, ``instructions``
    (may be ""), ``source`` (``"questions"``/``"instruct"``) and ``schema`` (the database's
    ``CREATE TABLE`` lines from ``metadata/<db_name>.json``).

    Raises:
        FileNotFoundError: the folder, a requested file, or a database's schema file is absent.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"sql-eval folder not found: {root}")
    rows: list[dict[str, Any]] = []
    for key in files:
        if key not in QUESTION_FILES:
            raise ValueError(f"unknown sql-eval file {key!r}; expected one of {', '.join(QUESTION_FILES)}")
        path = root / QUESTION_FILES[key]
        if not path.is_file():
            raise FileNotFoundError(f"sql-eval file not found: {path}")
        rows.extend(_read_csv(path, key))
    schemas: dict[str, str] = {}
    for row in rows:
        db = row["db_name"]
        if db not in schemas:
            meta = root / "metadata" / f"{db}.json"
            if not meta.is_file():
                raise FileNotFoundError(f"no table schema for database '{db}': {meta} is missing (defog-data's metadata/)")
            schemas[db] = _schema_from_metadata(meta)
        row["schema"] = schemas[db]
    return rows
