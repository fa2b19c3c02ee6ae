"""The core's shared row-file reader: every plugin reports a bad line the same way."""

from __future__ import annotations

import json

import pytest

from ftrecipe.data import RowFileError, iter_rows

ROWS = [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}]


def test_every_row_format_gives_the_same_rows(tmp_path) -> None:
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n", encoding="utf-8")
    (tmp_path / "d.json").write_text(json.dumps({"data": ROWS}), encoding="utf-8")
    (tmp_path / "d.csv").write_text('\ufeffprompt,completion\np1,c1\n"p2",c2\n', encoding="utf-8")  # with a BOM
    (tmp_path / "d.tsv").write_text("prompt\tcompletion\np1\tc1\np2\tc2\n", encoding="utf-8")
    for name in ("d.jsonl", "d.json", "d.csv", "d.tsv"):
        assert [row for _, row in iter_rows(tmp_path / name)] == ROWS, name


def test_line_numbers_are_the_file_lines(tmp_path) -> None:
    (tmp_path / "d.jsonl").write_text('\n{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert [n for n, _ in iter_rows(tmp_path / "d.jsonl")] == [2, 4]
    (tmp_path / "d.csv").write_text('a,b\n1,"two\nlines"\n3,4\n', encoding="utf-8")
    assert [(n, row["a"]) for n, row in iter_rows(tmp_path / "d.csv")] == [(3, "1"), (4, "3")]


def test_a_bad_line_fails_or_is_handed_over(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n[1]\n{"a": \n{"a": 4}\n', encoding="utf-8")
    with pytest.raises(RowFileError, match=r"bad.jsonl:2: expected a JSON object, got list"):
        list(iter_rows(path))
    bad: list[RowFileError] = []
    assert [row["a"] for _, row in iter_rows(path, bad.append)] == [1, 4]
    assert [(e.line, e.message.split(":")[0]) for e in bad] == [(2, "expected a JSON object, got list"), (3, "invalid JSON")]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.parquet", "", "not a readable Parquet file"),
        ("d.xlsx", "", "unsupported file type '.xlsx'"),
        ("d.csv", "", r"empty file \(no header line\)"),
        ("d.json", '{"rows": []}', "expected a list of objects"),
        ("d.json", "[1,", "d.json:1: invalid JSON"),
    ],
)
def test_unreadable_files_say_why(tmp_path, name, text, message) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(RowFileError, match=message):
        list(iter_rows(tmp_path / name))
