"""Errors that carry the recipe key they are about, so the runner can point at the line."""

from __future__ import annotations


class RecipeRuntimeError(Exception):
    """A user mistake found while running (a missing data file, a glob that matches nothing).

    ``path`` is the recipe key that declared the offending value; the CLI reports it located like a
    validation error and exits 2.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class RunFailure(Exception):
    """A runtime failure worth a clear message rather than a traceback (exit 1)."""
