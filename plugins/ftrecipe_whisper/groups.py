"""WER and CER per group (speaker, accent, ...) before and after training: which groups got worse.

A mean WER can fall while one accent's doubles, so each ``data.group_by`` column gets its own table:
per group the clips, the hours of audio, and the **corpus-level** WER and CER of its clips (jiwer over
all of the group's pairs: edits summed over reference words summed), the standard a mean of per-clip
rates is not (a one-word clip would weigh as much as a long call). Torch-free.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

GROUPS_FILE = "eval_groups.json"
NO_VALUE = "(none)"
"""The group of clips whose row leaves the column empty."""
FLAGGED = 20
"""Regressed groups warned about one by one on the console; the rest are counted (all are in the file)."""


def error_rates(references: Sequence[str], predictions: Sequence[str]) -> tuple[float, float]:
    """Corpus WER and CER of the pairs, as the ``wer`` and ``cer`` metrics compute them (jiwer)."""
    import jiwer

    return float(jiwer.wer(list(references), list(predictions))), float(jiwer.cer(list(references), list(predictions)))


def group_table(rows: Sequence[Mapping[str, Any]], references: Sequence[str], predictions: Sequence[str],
                columns: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Column -> group -> ``clips``, ``hours``, ``wer``, ``cer`` of the evaluated clips (``rows`` carry
    ``groups`` and ``duration``), groups sorted by name."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        members: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            members[(row.get("groups") or {}).get(column) or NO_VALUE].append(i)
        table[column] = {}
        for group in sorted(members):
            indices = members[group]
            wer, cer = error_rates([references[i] for i in indices], [predictions[i] for i in indices])
            table[column][group] = {"clips": len(indices), "hours": sum(rows[i]["duration"] for i in indices) / 3600.0,
                                    "wer": wer, "cer": cer}
    return table


def compare(before: Mapping[str, Mapping[str, Mapping[str, float]]] | None,
            after: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
    """Per column: each group's clips, hours, WER and CER before and after and their change; the worst
    group (highest WER after), the largest regression (the largest rise in WER; None when none rose)
    and the groups whose WER rose, worst rise first. Without ``before`` the changes are None."""
    out: dict[str, Any] = {}
    for column, groups in after.items():
        earlier = (before or {}).get(column, {})
        entries: dict[str, dict[str, Any]] = {}
        for group, now in groups.items():
            was = earlier.get(group)
            entry: dict[str, Any] = {"clips": int(now["clips"]), "hours": round(now["hours"], 6)}
            for rate in ("wer", "cer"):
                entry[f"{rate}_before"] = None if was is None else round(was[rate], 6)
                entry[f"{rate}_after"] = round(now[rate], 6)
                entry[f"{rate}_delta"] = None if was is None else round(now[rate] - was[rate], 6)
            entries[group] = entry
        worst = max(entries, key=lambda g: (entries[g]["wer_after"], entries[g]["clips"]), default=None)
        regressed = sorted((g for g, e in entries.items() if (e["wer_delta"] or 0) > 0),
                           key=lambda g: (-entries[g]["wer_delta"], g))
        out[column] = {"groups": entries, "worst": worst,
                       "largest_regression": regressed[0] if regressed else None, "regressed": regressed}
    return out


def _rate(entry: Mapping[str, Any], rate: str) -> str:
    after = f"{entry[f'{rate}_after']:.3f}"
    return after if entry[f"{rate}_before"] is None else f"{entry[f'{rate}_before']:.3f} -> {after}"


def describe(comparison: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(info lines, warning lines) for the console: per column the worst group and the largest
    regression, and one warning per group whose WER rose (the first :data:`FLAGGED`)."""
    info, warnings = [], []
    for column, result in comparison.items():
        groups = result["groups"]
        line = f"eval by {column}: {len(groups)} group(s)"
        if result["worst"] is not None:
            worst = groups[result["worst"]]
            line += f"; worst {result['worst']!r}: WER {_rate(worst, 'wer')} ({worst['clips']} clips, {worst['hours']:.3f} h)"
        if result["largest_regression"] is not None:
            name = result["largest_regression"]
            line += f"; largest regression {name!r}: WER {groups[name]['wer_delta']:+.3f}"
        info.append(line)
        for name in result["regressed"][:FLAGGED]:
            entry = groups[name]
            warnings.append(f"{column} {name!r} got worse: WER {_rate(entry, 'wer')}, CER {_rate(entry, 'cer')} "
                            f"({entry['clips']} clips, {entry['hours']:.3f} h)")
        if len(result["regressed"]) > FLAGGED:
            warnings.append(f"... and {len(result['regressed']) - FLAGGED} more {column} group(s) got worse (see {GROUPS_FILE})")
    return info, warnings


def card_lines(comparison: Mapping[str, Any], rows: int = FLAGGED) -> list[str]:
    """Model-card Markdown: per column a table of the groups, worst WER after training first."""
    lines: list[str] = []
    for column, result in comparison.items():
        groups = result["groups"]
        order = sorted(groups, key=lambda g: (-groups[g]["wer_after"], g))
        lines += ["", f"## WER by {column}", "", "| group | clips | hours | WER before | WER after | CER before | CER after |",
                  "|---|---|---|---|---|---|---|"]
        for name in order[:rows]:
            e = groups[name]
            cells = [f"{e[key]:.3f}" if e[key] is not None else "-" for key in ("wer_before", "wer_after", "cer_before", "cer_after")]
            lines.append(f"| {name}{' (worse)' if name in result['regressed'] else ''} | {e['clips']} | {e['hours']:.3g} | " + " | ".join(cells) + " |")
        if len(order) > rows:
            lines.append(f"\n{len(order) - rows} more group(s) in eval_groups.json.")
    return lines


class GroupTracker:
    """Keeps the base model's table ("before") and compares each later evaluation with it.

    The runner says which evaluation runs (``TaskContext.evaluation``): the one ``before`` training is the
    baseline; each later one (periodic, and last the final model's) is compared with it. ``eval_groups.json``
    is rewritten each time: the raw tables ``before`` and ``after`` (of :func:`group_table`) and their
    comparison ``groups`` (:func:`compare`); a resumed run, which skips the evaluation before training,
    takes "before" from it.
    """

    def __init__(self, output_dir: Path, *, write: bool, log: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.path, self.write = output_dir / GROUPS_FILE, write
        self.log, self.warn = log, warn
        self.before: dict[str, Any] | None = None
        self.read = False
        self.latest: dict[str, Any] | None = None
        """The last comparison (the final model's, once training is done)."""

    def record(self, table: dict[str, dict[str, dict[str, float]]], *, before: bool) -> dict[str, Any] | None:
        """Take one evaluation's :func:`group_table` (``before``: the base model's); returns the comparison
        with the base model (None for the base model's own)."""
        if before:
            self.before, self.read = table, True
            self._save({"before": table, "after": None, "groups": None})
            info, _ = describe(compare(None, table))
            for line in info:
                self.log(line + " (before training)")
            return None
        if self.before is None and not self.read and self.path.is_file():  # --resume: measured before the stop
            self.before = json.loads(self.path.read_text(encoding="utf-8")).get("before")
        self.read = True
        comparison = self.latest = compare(self.before, table)
        self._save({"before": self.before, "after": table, "groups": comparison})
        info, warnings = describe(comparison)
        for line in info:
            self.log(line)
        for line in warnings:
            self.warn(line)
        return comparison

    def _save(self, content: dict[str, Any]) -> None:
        if self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.tmp")
            temporary.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
            temporary.replace(self.path)
