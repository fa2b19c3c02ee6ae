"""Located messages about a recipe, and their text, JSON and GitHub-annotation forms."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where it is (file and position, or the ``--set`` argument), what key, what's wrong."""

    source: str
    path: str
    message: str
    line: int | None = None
    col: int | None = None
    severity: Severity = "error"

    def text(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}:{self.col}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{where}: {self.path}: {prefix}{self.message}" if self.path else f"{where}: {prefix}{self.message}"

    def github(self) -> str:
        """A GitHub Actions workflow command, shown as an annotation on the pull request."""
        properties = [f"file={self.source}"]
        if self.line is not None:
            properties += [f"line={self.line}", f"col={self.col}"]
        message = f"{self.path}: {self.message}" if self.path else self.message
        escaped = message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::{self.severity} {','.join(properties)}::{escaped}"

    def as_dict(self) -> dict:
        return asdict(self)


def dotted(path: Sequence[str | int]) -> str:
    """``('data', 'augment', 0, 'p')`` -> ``data.augment[0].p``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    matches = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def render(diagnostics: Sequence[Diagnostic], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([d.as_dict() for d in diagnostics], indent=2)
    if fmt == "github":
        return "\n".join(d.github() for d in diagnostics)
    return "\n".join(d.text() for d in diagnostics)
