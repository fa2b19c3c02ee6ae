"""The README's tables that code renders stay what the code says."""

from __future__ import annotations

from pathlib import Path

from ftrecipe.importing.render import readme_tables

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_shows_every_import_table_as_ftrecipe_import_keys_renders_it():
    """`ftrecipe import FORMAT --keys --markdown` and the README's tables are one text: a row added to a
    format's table without regenerating the README fails here (paste ``readme_tables()`` between the
    README's <details> tags)."""
    text = README.read_text(encoding="utf-8")
    assert readme_tables().strip() in text
