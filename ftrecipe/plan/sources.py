"""Where `ftrecipe diff` reads a recipe from: a file, or ``git:REV:path`` (``git show REV:path``).

A recipe read from git is validated under its own path, so the defaults taken from the file name
(``name``, ``output.dir``) equal those of the working-tree copy and a diff against it shows only what
was written; its diagnostics are then labelled ``git:REV:path`` so that they say which side is wrong.
"""

from __future__ import annotations

import dataclasses
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ftrecipe.diagnostics import Diagnostic
from ftrecipe.registry import Registry
from ftrecipe.validation import ValidationResult, validate_text

GIT_PREFIX = "git:"


class SourceError(Exception):
    """A recipe that cannot be read (no such file, a bad revision, not a git repository): one line, exit 2."""


@dataclass(frozen=True)
class RecipeSource:
    """One side of a diff: its text and where its data paths resolve."""

    label: str
    """What the user wrote: a path or ``git:REV:path``."""
    path: str
    """The file's own path (repository-relative for git): names the defaults taken from the file name."""
    text: str
    base_dir: Path
    """The folder its data paths are relative to (in the working tree, also for git)."""


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as error:
        raise SourceError("git is not installed (needed for git:REV:path)") from error


def _git_message(stderr: str) -> str:
    """git's own reason, one line: ``fatal: invalid object name 'x'.`` -> ``invalid object name 'x'``."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith("fatal:")] or lines or ["git failed"]
    return fatal[0].removeprefix("fatal:").strip().rstrip(".")


def read_git(spec: str, cwd: Path | None = None) -> RecipeSource:
    """``git:REV:path`` from the repository holding ``cwd``; ``path`` is relative to its root, as git
    reads it (``./x`` and ``../x`` are relative to ``cwd``, as git reads those too)."""
    cwd = Path.cwd() if cwd is None else cwd
    rev, sep, path = spec.removeprefix(GIT_PREFIX).partition(":")  # a revision never holds ':'
    if not sep or not rev or not path:
        raise SourceError(f"{spec}: expected git:REV:path, e.g. git:HEAD~1:recipes/llama.yaml")
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top.returncode != 0:
        raise SourceError(f"{spec}: {_git_message(top.stderr)}")
    shown = _git(["show", f"{rev}:{path}"], cwd)
    if shown.returncode != 0:
        raise SourceError(f"{spec}: {_git_message(shown.stderr)}")
    relative_to_cwd = path.startswith(("./", "../"))
    file = (cwd if relative_to_cwd else Path(top.stdout.strip())) / path
    return RecipeSource(label=spec, path=path, text=shown.stdout, base_dir=file.parent.resolve())


def read_file(spec: str) -> RecipeSource:
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise SourceError(f"{spec}: no such file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{spec}: cannot read the file: {error}") from error
    return RecipeSource(label=spec, path=spec, text=text, base_dir=path.parent.resolve())


def read_source(spec: str, cwd: Path | None = None) -> RecipeSource:
    """A recipe file path, or ``git:REV:path``; raises :class:`SourceError`."""
    return read_git(spec, cwd) if spec.startswith(GIT_PREFIX) else read_file(spec)


def validate_source(source: RecipeSource, registry: Registry | None = None) -> ValidationResult:
    """Validate under the file's own path, then label everything it reports with ``source.label``."""
    result = validate_text(source.text, source=source.path, registry=registry)
    result.base_dir = source.base_dir
    if source.label == source.path:
        return result

    def relabel(diagnostic: Diagnostic) -> Diagnostic:
        return dataclasses.replace(diagnostic, source=source.label) if diagnostic.source == source.path else diagnostic

    result.source = source.label
    result.diagnostics = [relabel(d) for d in result.diagnostics]
    locate = result.locate
    if locate is not None:  # problems the planner finds later are labelled the same way
        result.locate = lambda path, message, **kw: relabel(locate(path, message, **kw))  # type: ignore[assignment]
    return result
