"""`python -m ftrecipe` runs the command line."""

from ftrecipe.cli import entry

entry()
