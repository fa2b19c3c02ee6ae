"""Manifest writer for the Free Spoken Digit Dataset (FSDD): real 8 kHz phone-like speech.

FSDD files are ``recordings/{digit}_{speaker}_{index}.wav``; the transcript is the digit as an
English word, the speaker comes from the name, and ``metadata.py`` (a Python dict, read with
``ast.literal_eval``, never executed) supplies each speaker's accent for per-accent analysis.
"""

from __future__ import annotations

import ast
import csv
import os
import re
from pathlib import Path

__all__ = ["DIGIT_WORDS", "fsdd_manifest", "fsdd_speakers", "parse_fsdd_name"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NAME_RE = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<index>\d+)\.wav$")


def parse_fsdd_name(name: str) -> tuple[int, str, int]:
    """``"7_jackson_32.wav"`` -> ``(7, "jackson", 32)``; ``ValueError`` for other names."""
    m = _NAME_RE.match(name)
    if not m:
        raise ValueError(f"not an FSDD file name: {name!r}")
    return int(m["digit"]), m["speaker"], int(m["index"])


def _recordings(root: Path) -> Path:
    rec = root / "recordings"
    if rec.is_dir():
        return rec
    if root.is_dir() and any(_NAME_RE.match(p.name) for p in root.iterdir()):
        return root
    raise FileNotFoundError(f"no FSDD recordings under {root} (expected {rec})")


def fsdd_speakers(root: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """Speaker -> metadata (gender, accent, language) from ``metadata.py``; empty if absent."""
    path = Path(root) / "metadata.py"
    if not path.is_file():
        return {}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "metadata" for t in node.targets):
            value = ast.literal_eval(node.value)
            return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in value.items()}
    return {}


def fsdd_manifest(
    root: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    speakers: list[str] | None = None,
    limit: int | None = None,
) -> Path:
    """Write a CSV manifest (audio, text, speaker, accent) for FSDD under ``root``; returns ``out_csv``.

    ``root`` is the dataset folder (holding ``recordings/``) or the recordings folder itself.
    ``speakers`` keeps only those speakers. Rows are ordered by (index, digit, speaker) so that
    ``limit`` takes a balanced slice: the first rows already cover every digit and speaker.
    Audio paths are written relative to the CSV's folder, as :func:`read_manifest` resolves them.
    """
    root = Path(root)
    rec = _recordings(root)
    meta = fsdd_speakers(root if (root / "recordings").is_dir() else root.parent)
    wanted = set(speakers) if speakers is not None else None
    entries = []
    for path in rec.iterdir():
        try:
            digit, speaker, index = parse_fsdd_name(path.name)
        except ValueError:
            continue
        if wanted is None or speaker in wanted:
            entries.append((index, digit, speaker, path))
    if wanted is not None and (missing := wanted - {e[2] for e in entries}):
        raise ValueError(f"speaker(s) {sorted(missing)} not in FSDD at {rec}")
    entries.sort(key=lambda e: e[:3])
    if limit is not None:
        entries = entries[: max(0, limit)]
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent.resolve()
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["audio", "text", "speaker", "accent"])
        for _index, digit, speaker, path in entries:
            writer.writerow(
                [os.path.relpath(path.resolve(), base), DIGIT_WORDS[digit], speaker, meta.get(speaker, {}).get("accent", "")]
            )
    return out
