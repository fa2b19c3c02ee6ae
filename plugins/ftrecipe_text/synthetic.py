"""Deterministic synthetic text-to-SQL pairs over a small fixed schema.

Used where no real data may be downloaded: demos, tests and quick benchmarks. Several
question templates (each with a few phrasings) over two tables, filled with names,
departments, cities and numbers, so a tiny model trained from scratch for a minute or
two on a CPU visibly improves its exact match (it must learn the query shapes and copy
the entities). Questions and queries stay short (well under 40 BPE tokens).
Pure Python; the same ``(n, seed)`` always gives the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

__all__ = ["SCHEMA", "PROMPT_TEMPLATE", "synthetic_sql"]

#: The fixed schema every synthetic query runs against (SQLite/PostgreSQL compatible).
SCHEMA: Final[str] = (
    "CREATE TABLE employees (id INT, name TEXT, dept TEXT, salary INT, age INT);\n"
    "CREATE TABLE departments (name TEXT, city TEXT, budget INT);"
)

#: A schema-in-prompt template matching the rows' columns (``completion`` form, target ``query``).
PROMPT_TEMPLATE: Final[str] = "-- schema:\n{schema}\n-- question: {question}\n-- sql:\n"

DEPARTMENTS: Final[tuple[str, ...]] = (
    "sales", "marketing", "finance", "legal", "support", "research", "design", "operations",
)
NAMES: Final[tuple[str, ...]] = (
    "Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy",
    "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoe",
)
CITIES: Final[tuple[str, ...]] = ("Paris", "Berlin", "Madrid", "Rome", "Oslo", "Vienna")

_Filler = Callable[[random.Random], dict[str, object]]


def _dept(r: random.Random) -> dict[str, object]:
    return {"dept": r.choice(DEPARTMENTS)}


def _name(r: random.Random) -> dict[str, object]:
    return {"name": r.choice(NAMES)}


def _city(r: random.Random) -> dict[str, object]:
    return {"city": r.choice(CITIES)}


def _salary(r: random.Random) -> dict[str, object]:
    return {"n": r.randrange(30, 121, 5) * 1000}


def _age(r: random.Random) -> dict[str, object]:
    return {"n": r.randrange(20, 66)}


def _top(r: random.Random) -> dict[str, object]:
    return {"k": r.randrange(1, 11)}


def _dept_salary(r: random.Random) -> dict[str, object]:
    return {**_dept(r), **_salary(r)}


# (question phrasings, query, filler)
_TEMPLATES: Final[tuple[tuple[tuple[str, ...], str, _Filler], ...]] = (
    (("List the employees in {dept}.", "Who works in {dept}?", "Names of employees in the {dept} department?"),
     "SELECT name FROM employees WHERE dept = '{dept}';", _dept),
    (("How many employees work in {dept}?", "Count the employees in {dept}.", "Number of people in {dept}?"),
     "SELECT COUNT(*) FROM employees WHERE dept = '{dept}';", _dept),
    (("Which employees earn more than {n}?", "Who has a salary above {n}?"),
     "SELECT name FROM employees WHERE salary > {n};", _salary),
    (("Which employees earn less than {n}?", "Who has a salary below {n}?"),
     "SELECT name FROM employees WHERE salary < {n};", _salary),
    (("What is the average salary in {dept}?", "Average pay in the {dept} department?"),
     "SELECT AVG(salary) FROM employees WHERE dept = '{dept}';", _dept),
    (("What is the highest salary in {dept}?", "Top salary in {dept}?"),
     "SELECT MAX(salary) FROM employees WHERE dept = '{dept}';", _dept),
    (("What is the salary of {name}?", "How much does {name} earn?"),
     "SELECT salary FROM employees WHERE name = '{name}';", _name),
    (("Which department is {name} in?", "What department does {name} work in?"),
     "SELECT dept FROM employees WHERE name = '{name}';", _name),
    (("How old is {name}?", "What is the age of {name}?"),
     "SELECT age FROM employees WHERE name = '{name}';", _name),
    (("List employees older than {n}.", "Who is older than {n}?"),
     "SELECT name FROM employees WHERE age > {n};", _age),
    (("Show the {k} highest paid employees.", "Who are the top {k} earners?"),
     "SELECT name FROM employees ORDER BY salary DESC LIMIT {k};", _top),
    (("Which departments are in {city}?", "List the departments located in {city}."),
     "SELECT name FROM departments WHERE city = '{city}';", _city),
    (("What is the budget of {dept}?", "How big is the {dept} budget?"),
     "SELECT budget FROM departments WHERE name = '{dept}';", _dept),
    (("Where is the {dept} department?", "In which city is {dept}?"),
     "SELECT city FROM departments WHERE name = '{dept}';", _dept),
    (("Who in {dept} earns more than {n}?", "List {dept} employees paid over {n}."),
     "SELECT name FROM employees WHERE dept = '{dept}' AND salary > {n};", _dept_salary),
)


def synthetic_sql(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Return ``n`` rows ``{"question", "query", "schema"}``, deterministic for ``seed``.

    Templates are drawn uniformly, then a phrasing and the slot values. Duplicates can
    occur (as in real data); different seeds give different streams.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for _ in range(n):
        phrasings, query, filler = rng.choice(_TEMPLATES)
        phrasing = rng.choice(phrasings)
        values = filler(rng)
        rows.append({"question": phrasing.format(**values), "query": query.format(**values), "schema": SCHEMA})
    return rows
