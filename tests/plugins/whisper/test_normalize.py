"""Transcript normalisation, checked against hand-written expectations."""

from __future__ import annotations

import pytest
from ftrecipe_whisper.normalize import normalize_text, number_to_words


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (42, "forty two"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (1234, "one thousand two hundred thirty four"),
        (2_000_019, "two million nineteen"),
        ("0800", "zero eight zero zero"),
        ("1,000", "one thousand"),
    ],
)
def test_number_to_words(number, words) -> None:
    assert number_to_words(number) == words


def test_number_to_words_rejects_non_numbers() -> None:
    with pytest.raises(ValueError):
        number_to_words("12a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", "seven"),
        ("42", "forty two"),
        ("Hello,   World!", "hello world"),
        ("I'd like 2 tickets.", "i'd like two tickets"),
        ("It's 3.5 percent", "it's three point five percent"),
        ("pay 1,250 now", "pay one thousand two hundred fifty now"),
        ("the 21st of May", "the twenty first of may"),
        ("50% off", "fifty percent off"),
        ("account 007", "account zero zero seven"),
        ("room A7", "room a seven"),
        ("forty-two", "forty two"),
        ("  tabs\tand\nnewlines ", "tabs and newlines"),
        ("'quoted'", "quoted"),
    ],
)
def test_normalize_text_defaults(text: str, expected: str) -> None:
    assert normalize_text(text) == expected


def test_options_switch_steps_off() -> None:
    assert normalize_text("Call 7, OK?", lowercase=False) == "Call seven OK"
    assert normalize_text("Call 7, OK?", punctuation=False) == "call seven, ok?"
    assert normalize_text("Call 7, OK?", numbers=False) == "call 7 ok"
    assert normalize_text("a  b", whitespace=False) == "a  b"
    assert normalize_text("don't", keep_apostrophes=False) == "don t"


def test_idempotent() -> None:
    once = normalize_text("Hi! It's 12:30, call 0800-123.")
    assert normalize_text(once) == once
