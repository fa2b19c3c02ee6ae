"""Reader for the defog sql-eval PostgreSQL questions (``../shared/datasets/sql-eval/``).

What the folder really holds (its README also promises ``metadata/*.json``; they are absent):

* ``questions_gen_postgres.csv``: question, query, db_name, query_category, instructions
  (210 rows over 11 databases).
* ``instruct_basic_postgres.csv``: db_name, query_category, question, query (40 rows).

Gold queries use two notations, resolved here:

* several acceptable queries separated by ``;`` (split outside string literals);
* ``{a, b}`` column choices meaning "any non-empty subset of these columns, in this
  order", with ``{}`` later in the same query (``GROUP BY {}``) repeating the choice.

Each row's ``query`` is the *canonical* gold: the first alternative with every choice set
to *all* listed columns (the most informative training target). ``gold_queries`` lists
every expansion of every alternative, canonical first, for exact match against any of them.

Schema text: from ``metadata/<db_name>.json`` when such a folder exists (defog's
``{"table_metadata": {table: [{column_name, data_type, ...}]}}`` layout, or the bare
table mapping); otherwise *inferred* from all gold queries of the same database (the tables
and columns they reference, no types). The inferred schema is partial and derived from
gold answers at database level, so treat scores on it as optimistic; ``schema_source``
says which one a row got. Pure Python.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = [
    "DEFAULT_ROOT",
    "QUESTION_FILES",
    "split_alternatives",
    "expand_column_choices",
    "gold_alternatives",
    "canonical_query",
    "infer_schemas",
    "load_sql_eval",
]

#: Where the dataset lies relative to the repository root.
DEFAULT_ROOT: Final[Path] = Path("..") / "shared" / "datasets" / "sql-eval"

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


# --- schema inference -------------------------------------------------------------------

_SQL_WORDS: Final[frozenset[str]] = frozenset(
    """select from where join left right inner outer full cross on and or not in is null as group by order
    having limit offset distinct asc desc nulls last first case when then else end between like ilike
    with union all exists any count sum avg min max cast float int integer numeric date interval year month
    day extract current_date current_timestamp now coalesce nullif lower upper true false over partition
    row_number rank dense_rank using text double precision to_char date_trunc age round percentile_cont
    within filter lateral varchar timestamp week hour minute second quarter dow epoch string_agg
    array_agg abs length trim ceil floor greatest least decimal bigint real boolean""".split()
)
_TABLE = r"([a-z_][\w.]*)\b(?!\s*\()(?:\s+(?:as\s+)?([a-z_]\w*))?"
_TABLE_REF = re.compile(r"\b(?:from|join)\s+" + _TABLE, re.IGNORECASE)
_MORE_TABLES = re.compile(r"\s*,\s*" + _TABLE, re.IGNORECASE)
_CTE = re.compile(r"(?:\bwith|,)\s*([a-z_]\w*)\s+as\s*\(", re.IGNORECASE)
_QUALIFIED = re.compile(r"\b([a-z_]\w*)\.([a-z_]\w*)\b(?!\s*\()", re.IGNORECASE)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_NOISE = re.compile(r"::\s*\w+|\bextract\s*\(\s*\w+\s+from\b", re.IGNORECASE)


def _table_refs(sql: str) -> list[tuple[str, str | None]]:
    """``(table, alias)`` for each table after FROM/JOIN, including ``FROM a, b`` lists."""
    refs: list[tuple[str, str | None]] = []
    pos = 0
    while (match := _TABLE_REF.search(sql, pos)) is not None:
        while match is not None:
            table, alias = match.group(1), match.group(2)
            pos = match.end()
            if alias is not None and alias.lower() in _SQL_WORDS:
                alias, pos = None, match.end(1)  # a keyword, not an alias: rescan from there
            refs.append((table, alias))
            match = _MORE_TABLES.match(sql, pos)
    return refs


def _tables_and_columns(query: str) -> dict[str, set[str]]:
    """Tables a query reads and the columns it references on them."""
    sql = _NOISE.sub(lambda m: "" if m.group(0).startswith("::") else "extract(", _LITERAL.sub("''", query))
    ctes = {m.group(1).lower() for m in _CTE.finditer(sql)}
    aliases: dict[str, str] = {}
    found: dict[str, set[str]] = {}
    for table, alias in _table_refs(sql):
        if table.lower() in ctes or table.lower() in _SQL_WORDS:
            continue
        table = next((t for t in found if t.lower() == table.lower()), table)
        found.setdefault(table, set())
        aliases[table.lower()] = table
        aliases[table.rsplit(".", 1)[-1].lower()] = table
        if alias:
            aliases[alias.lower()] = table
    table_names = {t.lower() for t in found}
    for m in _QUALIFIED.finditer(sql):
        prefix, column = m.group(1), m.group(2)
        if f"{prefix}.{column}".lower() in table_names:
            continue  # a schema-qualified table name, not a column
        table = aliases.get(prefix.lower())
        if table is not None:
            found[table].add(column)
    if len(found) == 1:  # single table: bare identifiers that are not keywords are its columns
        (table,) = found
        bare = re.sub(r"\b[a-z_]\w*\.[a-z_]\w*\b", " ", sql, flags=re.IGNORECASE)
        defined = {m.group(1).lower() for m in re.finditer(r"\bas\s+([a-z_]\w*)", bare, re.IGNORECASE)}
        for m in re.finditer(r"\b([a-z_]\w*)\b(?!\s*\()", bare, re.IGNORECASE):
            word = m.group(1)
            low = word.lower()
            if low in _SQL_WORDS or low in defined or low in aliases or low in ctes:
                continue
            found[table].add(word)
    return found


def infer_schemas(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Per ``db_name``, a ``CREATE TABLE t (c1, c2);`` text of what its gold queries reference."""
    per_db: dict[str, dict[str, dict[str, str]]] = {}
    for row in rows:
        tables = per_db.setdefault(row["db_name"], {})
        for alt in split_alternatives(row["query"]):
            for q in expand_column_choices(alt, all_only=True):
                for table, cols in _tables_and_columns(q).items():
                    entry = tables.setdefault(table.lower(), {"": table})
                    for c in sorted(cols):
                        entry.setdefault(c.lower(), c)
    schemas: dict[str, str] = {}
    for db, tables in per_db.items():
        lines = []
        for key in sorted(tables):
            entry = tables[key]
            cols = [entry[k] for k in sorted(entry) if k]
            lines.append(f"CREATE TABLE {entry['']} ({', '.join(cols)});")
        schemas[db] = "\n".join(lines)
    return schemas


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


def load_sql_eval(
    root: str | Path = DEFAULT_ROOT,
    *,
    files: Sequence[str] = ("questions",),
    infer_schema: bool = True,
) -> list[dict[str, Any]]:
    """Load sql-eval questions as dicts.

    Each row has ``question``, ``query`` (canonical gold), ``gold_queries`` (all accepted
    golds), ``query_raw`` (as written), ``db_name``, ``query_category``, ``instructions``
    (may be ""), ``source`` (``"questions"``/``"instruct"``), ``schema`` and
    ``schema_source`` (``"metadata"``, ``"inferred"`` or ``"none"``).

    Args:
        root: the sql-eval folder (default ``../shared/datasets/sql-eval``, relative to the
            current directory, i.e. the repository root).
        files: which question files, keys of :data:`QUESTION_FILES`.
        infer_schema: infer a schema from gold queries when no metadata file exists.

    Raises:
        FileNotFoundError: the folder or a requested file is absent.
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

    inferred: dict[str, str] = {}
    if infer_schema:
        # infer from every question file present, so each database gets its fullest picture
        pool: list[dict[str, Any]] = []
        for name in QUESTION_FILES.values():
            if (root / name).is_file():
                with (root / name).open(encoding="utf-8", newline="") as fh:
                    pool.extend(csv.DictReader(fh))
        inferred = infer_schemas(pool)
    metadata_dir = root / "metadata"
    for row in rows:
        meta = metadata_dir / f"{row['db_name']}.json"
        if meta.is_file():
            row["schema"], row["schema_source"] = _schema_from_metadata(meta), "metadata"
        elif row["db_name"] in inferred:
            row["schema"], row["schema_source"] = inferred[row["db_name"]], "inferred"
        else:
            row["schema"], row["schema_source"] = "", "none"
    return rows
