"""Transcript normalisation so that references and hypotheses are compared (and trained) alike.

Call-centre transcripts mix "7", "seven", "Seven." and "forty-two"; without normalising, WER
counts these as errors and the model wastes capacity learning formatting. Numbers are spelled
out in English: integers as words ("42" -> "forty two"), numbers with a leading zero digit by digit
("007" -> "zero zero seven", how account and phone numbers are read), decimals with "point".
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text", "number_to_words"]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ["", "thousand", "million", "billion", "trillion"]
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip

# 1,234,567 | 3.14 | 42 | 1st 2nd 3rd 4th | optional trailing %.
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?P<ord>st|nd|rd|th)?(?P<pct>%)?(?!\w)",
    re.IGNORECASE,
)
_WS_RE = re.compile(r"\s+")


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def _digits(s: str) -> str:
    return " ".join(_ONES[int(c)] for c in s)


def number_to_words(number: int | str) -> str:
    """Spell a non-negative integer in English words ("42" -> "forty two").

    Strings with a leading zero ("0800") or more than 15 digits are read digit by digit.
    """
    s = str(number).replace(",", "")
    if not s.isdigit():
        raise ValueError(f"not a non-negative integer: {number!r}")
    if (len(s) > 1 and s[0] == "0") or len(s) > 15:
        return _digits(s)
    n = int(s)
    if n == 0:
        return "zero"
    groups: list[str] = []
    scale = 0
    while n:
        n, chunk = divmod(n, 1000)
        if chunk:
            groups[:0] = _below_thousand(chunk) + ([_SCALES[scale]] if _SCALES[scale] else [])
        scale += 1
    return " ".join(groups)


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}" if head else last


def _spell_match(m: re.Match[str]) -> str:
    words = number_to_words(m["num"])
    if m["frac"]:
        words += " point " + _digits(m["frac"][1:])
    elif m["ord"]:
        words = _ordinal(words)
    if m["pct"]:
        words += " percent"
    return words


def _strip_punctuation(text: str, keep_apostrophes: bool) -> str:
    out = []
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if cat[0] in "PS":
            is_inner_apostrophe = (
                keep_apostrophes
                and ch in "'\u2019"
                and 0 < i < len(text) - 1
                and text[i - 1].isalnum()
                and text[i + 1].isalnum()
            )
            out.append("'" if is_inner_apostrophe else " ")
        else:
            out.append(ch)
    return "".join(out)


def normalize_text(
    text: str,
    *,
    lowercase: bool = True,
    punctuation: bool = True,
    numbers: bool = True,
    whitespace: bool = True,
    keep_apostrophes: bool = True,
) -> str:
    """Normalise a transcript.

    Steps, in this order (numbers first because "3.5" and "1,000" need their punctuation):
    ``numbers`` spells digits as English words; ``lowercase``; ``punctuation`` replaces punctuation
    and symbols with spaces, keeping apostrophes inside words ("don't") when ``keep_apostrophes``;
    ``whitespace`` collapses runs of whitespace and strips the ends.
    """
    if numbers:
        text = _NUMBER_RE.sub(_spell_match, text)
        # Digits glued to letters ("A7", "7B") are still read digit by digit.
        text = re.sub(r"\d+", lambda m: f" {_digits(m[0])} ", text)
    if lowercase:
        text = text.lower()
    if punctuation:
        text = _strip_punctuation(text, keep_apostrophes)
    if whitespace:
        text = _WS_RE.sub(" ", text).strip()
    return text
