"""Reviewing recipes that strangers wrote (``--untrusted``): nothing outside the repository is read.

A pull request can point a recipe's paths anywhere: ``data.train: ../../../../etc/passwd``, an
absolute path, or a symbolic link committed inside the tree that leads out of it. ``ftrecipe
validate|plan|diff --untrusted`` (what the review workflow and the pre-commit hooks run) refuses
every such value of a field marked :data:`~ftrecipe.sections.LOCAL_PATH`, located at its key, before
anything is read; a folder is refused too when a link inside it leaves the tree. The plan of an
untrusted recipe keeps only counts of its data (see :func:`counts_only`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ftrecipe.diagnostics import Diagnostic
from ftrecipe.sections import LOCAL_PATH

Key = tuple[str | int, ...]


class Reviewed(Protocol):
    """What this module needs of a :class:`ftrecipe.validation.ValidationResult`."""

    recipe: Any
    base_dir: Path
    diagnostics: list[Diagnostic]

    @property
    def ok(self) -> bool: ...

    def diagnostic(self, path: Key, message: str) -> Diagnostic: ...


LINKS_LOOKED_AT = 100_000
"""Entries of a data folder checked for links that leave the tree (a larger folder is refused)."""


def repository_root(start: Path) -> Path:
    """The enclosing git work tree of ``start`` (a folder holding ``.git``), or ``start`` itself."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def marked_values(model: BaseModel, prefix: Key = ()) -> Iterator[tuple[Key, str]]:
    """Every value of a :data:`LOCAL_PATH` field in ``model`` and the sections it holds, with its key."""
    for name, info in type(model).model_fields.items():
        value, key = getattr(model, name, None), prefix + (name,)
        if LOCAL_PATH in info.metadata:
            if isinstance(value, str):
                yield key, value
            elif isinstance(value, list):
                yield from ((key + (i,), item) for i, item in enumerate(value) if isinstance(item, str))
        elif isinstance(value, BaseModel):
            yield from marked_values(value, key)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from marked_values(item, key + (i,))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _escaping_link(folder: Path, root: Path) -> str | None:
    """Why ``folder`` may not be read: a link under it whose target is outside ``root`` (named relative to
    the folder), or more entries than are checked; None when it stays in the tree."""
    seen = 0
    for current, folders, files in os.walk(folder):
        for name in folders + files:
            seen += 1
            entry = Path(current) / name
            if entry.is_symlink() and not _inside(entry.resolve(), root):
                return f"holds a symbolic link that leaves the repository ({entry.relative_to(folder)})"
        if seen > LINKS_LOOKED_AT:
            return f"holds more than {LINKS_LOOKED_AT:,} entries, too many to check for links that leave the repository"
    return None


def leaving_value(value: str, base_dir: Path, root: Path) -> str | None:
    """Why ``value`` (relative to ``base_dir``) may not be read in an untrusted review, or None."""
    given = Path(value).expanduser()
    if given.is_absolute():
        return f"'{value}' is an absolute path: an untrusted review reads only inside the repository ({root})"
    # relative to the recipe (how data is read) and to the working directory (how a local base is found)
    starts = [base_dir] + ([Path.cwd()] if _inside(Path.cwd().resolve(), root) else [])
    for written in (Path(os.path.normpath(start / given)) for start in starts):
        if not _inside(written, root):
            return f"'{value}' resolves outside the repository ({root}): an untrusted review does not read it"
    written = Path(os.path.normpath(base_dir / given))
    target = written.resolve()
    if not _inside(target, root):
        return f"'{value}' is a symbolic link that leaves the repository (to {target}): an untrusted review does not follow it"
    if target.is_dir():
        why = _escaping_link(target, root)
        if why is not None:
            return f"'{value}' {why}: an untrusted review does not read it"
    return None


def untrusted_problems(result: Reviewed) -> list[Diagnostic]:
    """The located refusals for a valid recipe reviewed with ``--untrusted`` (empty: nothing leaves the tree)."""
    if result.recipe is None:
        return []
    base_dir = Path(result.base_dir).resolve()
    root = repository_root(base_dir)
    problems = []
    for key, value in marked_values(result.recipe):
        why = leaving_value(value, base_dir, root)
        if why is not None:
            problems.append(result.diagnostic(key, why))
    return problems


def untrusted_checked(results: list[Reviewed], untrusted: bool) -> list[Reviewed]:
    """``results`` with, under ``--untrusted``, a located error for every path that leaves the repository."""
    if untrusted:
        for result in results:
            if result.ok:
                result.diagnostics.extend(untrusted_problems(result))
    return results


def counts_only(data: dict[str, Any], recipe_labels: list[str] | None) -> dict[str, Any]:
    """A plan's data section with nothing read from the data but numbers: class names the recipe does
    not itself name become ``class N``, and the reason the data could not be read is left out
    (``ftrecipe plan`` without ``--untrusted`` shows it; the plan leaves out the data's warnings too)."""
    named = set(recipe_labels or [])
    balance = data.get("balance") or {}
    data["balance"] = {(label if label in named else f"class {i}"): n for i, (label, n) in enumerate(balance.items(), 1)}
    if data.get("unavailable"):
        data["unavailable"] = "the data could not be read (the reason is left out of an untrusted review)"
    return data
