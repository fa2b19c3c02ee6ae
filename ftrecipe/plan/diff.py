"""`ftrecipe diff OLD NEW`: what changed in a recipe once defaults are filled, and what the change does.

A reviewer reads a recipe change as text; what matters is what it does: the trainable parameters,
the memory per device against its budget, the data and the compute. Both sides are resolved and
planned (``ftrecipe.plan.build.plan_recipe``, imported only when needed: it may bring torch) and
shown side by side, in text for a terminal or as a Markdown table for a pull-request comment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ftrecipe.diagnostics import Diagnostic, render
from ftrecipe.errors import RecipeRuntimeError
from ftrecipe.plan.sources import SourceError, read_source, validate_source
from ftrecipe.plan.memory import duration, human
from ftrecipe.plan.render import speed_text
from ftrecipe.untrusted import untrusted_checked
from ftrecipe.validation import ValidationResult, flatten, resolved_data

EXIT_OK, EXIT_USAGE = 0, 2
ABSENT = object()
"""A key one side does not have (added or removed)."""

Planner = Callable[[ValidationResult], Any]
"""``plan_recipe``'s shape: a validated recipe -> a Plan (``.as_dict()``) or its dict."""


# ---------------------------------------------------------------- what changed


@dataclass(frozen=True)
class KeyChange:
    key: str
    old: Any  # ABSENT when added
    new: Any  # ABSENT when removed

    @property
    def kind(self) -> str:
        return "added" if self.old is ABSENT else "removed" if self.new is ABSENT else "changed"


def _ordered_union(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """NEW's keys in order, each key only OLD has placed after its predecessor in OLD (schema order)."""
    keys = list(new)
    previous: str | None = None
    for key in old:
        if key not in new:
            keys.insert(keys.index(previous) + 1 if previous is not None else 0, key)
        previous = key
    return keys


def key_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[KeyChange]:
    """Changed, added and removed dotted keys between two resolved recipes. A ``null`` that becomes a
    mapping (``freeze.lora`` filled in) shows as the keys added, not also as ``freeze.lora`` removed."""
    flat_old, flat_new = flatten(dict(old)), flatten(dict(new))

    def widened(key: str, other: dict[str, Any]) -> bool:
        return any(k.startswith(key + ".") for k in other)

    changes = []
    for key in _ordered_union(flat_old, flat_new):
        before, after = flat_old.get(key, ABSENT), flat_new.get(key, ABSENT)
        if before == after and type(before) is type(after):
            continue
        if (after is ABSENT and before is None and widened(key, flat_new)) or (
            before is ABSENT and after is None and widened(key, flat_old)
        ):
            continue
        changes.append(KeyChange(key, before, after))
    return changes


# ---------------------------------------------------------------- what it does


@dataclass
class Side:
    """One side's plan as a dict (``Plan.as_dict()``), or why there is none."""

    label: str
    plan: dict[str, Any] | None
    unavailable: str | None = None

    def get(self, *path: str) -> Any:
        node: Any = self.plan
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return node


@dataclass(frozen=True)
class ImpactRow:
    name: str
    before: str
    after: str
    change: str


@dataclass
class RecipeDiff:
    old: Side
    new: Side
    changes: list[KeyChange]
    rows: list[ImpactRow] = field(default_factory=list)
    new_warnings: list[str] = field(default_factory=list)
    gone_warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class LocatedMistake(Exception):
    """A user mistake the planner found (a missing data file), located in the side's recipe: exit 2."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.text())
        self.diagnostic = diagnostic


def _plan_side(result: ValidationResult, planner: Planner) -> Side:
    """Plan one side. A located user mistake is raised as :class:`LocatedMistake`; a modality that
    cannot plan leaves the side unavailable, with the reason, rather than failing the diff."""
    try:
        plan = planner(result)
    except RecipeRuntimeError as error:
        raise LocatedMistake(result.diagnostic(error.path, error.message)) from error
    except Exception as error:  # noqa: BLE001 - any other failure: this side's plan is unavailable
        return Side(result.source, None, f"{type(error).__name__}: {error}")
    return Side(result.source, dict(plan if isinstance(plan, Mapping) else plan.as_dict()))


def _si(value: float, units: tuple[str, ...], step: float = 1000.0) -> str:
    magnitude, unit = abs(value), 0
    while magnitude >= step and unit < len(units) - 1:
        magnitude /= step
        unit += 1
    digits = 0 if unit == 0 else 2 if magnitude < 10 else 1
    return f"{'-' if value < 0 else ''}{magnitude:.{digits}f}{units[unit]}"


def count(value: float) -> str:
    """1234567 -> ``1.23M``."""
    return _si(value, ("", "K", "M", "B", "T"))


def flops(value: float) -> str:
    return _si(value, (" FLOP", " KFLOP", " MFLOP", " GFLOP", " TFLOP", " PFLOP", " EFLOP", " ZFLOP"))


def _change(before: float | None, after: float | None, fmt: Callable[[float], str]) -> str:
    if before is None or after is None:
        return "n/a"
    if before == after:
        return "same"
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return "changed"
    delta = after - before
    text = ("+" if delta > 0 else "") + fmt(delta)
    if before:
        share = delta / before
        text += f" (x{after / before:.3g})" if share >= 10 else f" ({share:+.0%})" if abs(share) >= 0.01 else f" ({share:+.2%})"
    return text


def _memory(side: Side) -> str | None:
    used = side.get("memory", "per_device_bytes")
    if used is None:
        return None
    budget, verdict = side.get("memory", "budget_bytes"), side.get("memory", "verdict")
    text = human(used) + (f" of {human(budget)}" if budget else "")
    return f"{text}, {verdict}" if verdict and verdict != "unknown" else text


def _trainable(side: Side) -> str | None:
    trainable = side.get("params", "trainable")
    if trainable is None:
        return None
    strategy = side.get("params", "strategy")
    return count(trainable) + (f" ({strategy})" if strategy else "")


def _hours(side: Side) -> str | None:
    value, gpu = side.get("compute", "hours"), side.get("compute", "gpu")
    return None if value is None else duration(value) + (f" on {gpu}" if gpu else "")


def impact(old: Side, new: Side) -> list[ImpactRow]:
    """The before/after rows: parameters, memory, data and compute; ``unknown`` where a side lacks one."""
    def row(name: str, path: tuple[str, str], fmt: Callable[[float], str], show: Callable[[Side], str | None] | None = None) -> ImpactRow:
        before, after = old.get(*path), new.get(*path)

        def shown(side: Side, value: Any) -> str:
            if side.plan is None:
                return "unavailable"
            text = show(side) if show else (None if value is None else fmt(value))
            return "unknown" if text is None else text

        return ImpactRow(name, shown(old, before), shown(new, after), _change(before, after, fmt))

    rows = [
        row("trainable parameters", ("params", "trainable"), count, _trainable),
        row("total parameters", ("params", "total"), count),
        row("memory per device", ("memory", "per_device_bytes"), human, _memory),
        row("train examples", ("data", "train_examples"), lambda v: f"{v:,.0f}"),
        row("optimizer steps", ("compute", "steps"), lambda v: f"{v:,.0f}"),
        row("training compute", ("compute", "train_flops"), flops),
        row("training time", ("compute", "hours"), duration, _hours),
    ]
    if old.get("checkpoints") or new.get("checkpoints"):  # (a task with its own loop writes its library's)
        rows.insert(3, row("checkpoint size", ("checkpoints", "bytes_each"), human))
    if old.get("speed") or new.get("speed"):  # a modality with switches, one of them on (or speed: auto)
        rows.append(row("speed switches", ("speed",), lambda v: speed_text(v) if v else "all off"))
    return rows


def diff_recipes(old: ValidationResult, new: ValidationResult, planner: Planner | None = None) -> RecipeDiff:
    """The whole comparison of two valid recipes; ``planner`` defaults to ``plan_recipe``."""
    if planner is None:
        planner = _default_planner()
    return compare(old, _plan_side(old, planner), new, _plan_side(new, planner))


def compare(old: ValidationResult, before: Side, new: ValidationResult, after: Side) -> RecipeDiff:
    """Two valid recipes and their plans (already made), compared: what :func:`diff_recipes` shows, and
    what ``ftrecipe plan --watch`` says an edit changed."""
    assert old.recipe is not None and new.recipe is not None
    result = RecipeDiff(before, after, key_changes(resolved_data(old.recipe), resolved_data(new.recipe)))
    if before.plan is not None or after.plan is not None:
        result.rows = impact(before, after)
    old_warnings, new_warnings = before.get("warnings") or [], after.get("warnings") or []
    if before.plan is not None and after.plan is not None:
        result.new_warnings = [w for w in new_warnings if w not in old_warnings]
        result.gone_warnings = [w for w in old_warnings if w not in new_warnings]
    elif after.plan is not None:
        result.new_warnings = list(new_warnings)
    for side, name in ((before, "OLD"), (after, "NEW")):
        if side.unavailable:
            result.notes.append(f"{name} ({side.label}): plan unavailable: {side.unavailable}")
        elif side.get("data", "unavailable"):
            result.notes.append(f"{name} ({side.label}): data not read: {side.get('data', 'unavailable')}")
    return result


def _default_planner(*, trust_remote_code: bool = False, untrusted: bool = False, cache: bool = True) -> Planner:
    def plan(result: ValidationResult) -> Any:
        from ftrecipe.plan.build import plan_recipe  # may import torch: only once both sides are valid
        from ftrecipe.libraries import adopt_library_loggers
        from ftrecipe.hub import never_download

        never_download()
        try:
            return plan_recipe(result, trust_remote_code=trust_remote_code, untrusted=untrusted, cache=cache)
        finally:
            adopt_library_loggers()

    return plan


# ---------------------------------------------------------------- text and markdown


def value_text(value: Any, limit: int = 80) -> str:
    """A resolved value as a reviewer reads it: YAML-like scalars, JSON for lists and mappings."""
    if value is ABSENT:
        return "-"
    if value is None or isinstance(value, (bool, list, dict)) or (isinstance(value, str) and ("\n" in value or not value)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def change_lines(changes: list[KeyChange]) -> list[str]:
    """One line a changed, added or removed key (``~``, ``+``, ``-``), indented."""
    if not changes:
        return ["  no change after resolution"]
    marks = {"added": "+", "removed": "-", "changed": "~"}
    lines = []
    for change in changes:
        if change.kind == "changed":
            lines.append(f"  ~ {change.key}: {value_text(change.old)} -> {value_text(change.new)}")
        else:
            value = change.new if change.kind == "added" else change.old
            lines.append(f"  {marks[change.kind]} {change.key}: {value_text(value)} ({change.kind})")
    return lines


def row_lines(rows: list[ImpactRow]) -> list[str]:
    """The impact rows as aligned columns: name, before -> after, the change."""
    width = max((len(row.name) for row in rows), default=0)
    before_width = max((len(row.before) for row in rows), default=0)
    after_width = max((len(row.after) for row in rows), default=0)
    return [f"  {row.name:<{width}}  {row.before:>{before_width}} -> {row.after:<{after_width}}  {row.change}" for row in rows]


def render_text(diff: RecipeDiff) -> str:
    lines = [f"ftrecipe diff {diff.old.label} -> {diff.new.label}", "", "changes after resolution:"]
    lines += change_lines(diff.changes)
    lines += ["", "what it does:"]
    if not diff.rows:
        lines.append("  unknown: neither side could be planned")
    lines += row_lines(diff.rows)
    if diff.new_warnings:
        lines += ["", "new warnings:", *(f"  ! {w}" for w in diff.new_warnings)]
    if diff.gone_warnings:
        lines += ["", "warnings gone:", *(f"  - {w}" for w in diff.gone_warnings)]
    if diff.notes:
        lines += ["", *(f"note: {n}" for n in diff.notes)]
    return "\n".join(lines)


def _cell(text: str, code: bool = False) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`{text.replace('`', chr(39))}`" if code and text != "-" else text


def render_markdown(diff: RecipeDiff) -> str:
    lines = [f"### `{diff.old.label}` → `{diff.new.label}`", ""]
    if diff.changes:
        lines += ["| key | before | after |", "|---|---|---|"]
        lines += [f"| `{c.key}` | {_cell(value_text(c.old), True)} | {_cell(value_text(c.new), True)} |" for c in diff.changes]
    else:
        lines.append("No change after resolution.")
    if diff.rows:
        lines += ["", "| | before | after | change |", "|---|---|---|---|"]
    else:
        lines += ["", "What it does: unknown, neither side could be planned."]
    lines += [f"| {row.name} | {_cell(row.before)} | {_cell(row.after)} | {_cell(row.change)} |" for row in diff.rows]
    if diff.new_warnings:
        lines += ["", "**New warnings**", "", *(f"- {_cell(w)}" for w in diff.new_warnings)]
    if diff.gone_warnings:
        lines += ["", "**Warnings gone**", "", *(f"- {_cell(w)}" for w in diff.gone_warnings)]
    if diff.notes:
        for note in diff.notes:
            lines += ["", f"> {_cell(note)}"]
    return "\n".join(lines)


# ---------------------------------------------------------------- the command


def run_diff(args: argparse.Namespace, planner: Planner | None = None) -> int:
    """``ftrecipe diff OLD NEW [--format text|markdown]``: 0 whether or not they differ, 2 on bad input."""
    results = []
    for spec in (args.old, args.new):
        try:
            source = read_source(spec)
        except SourceError as error:
            print(f"ftrecipe diff: {error}", file=sys.stderr)
            return EXIT_USAGE
        results.append(validate_source(source))
    untrusted = getattr(args, "untrusted", False)
    untrusted_checked(results, untrusted)
    if not all(result.ok for result in results):
        print(render([d for result in results if not result.ok for d in result.diagnostics], "text"), file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "owns_process", False):
        from ftrecipe.libraries import leave_out

        leave_out("bitsandbytes", "deepspeed")  # plans quantise nothing (NF4 and 8-bit states are arithmetic) nor shard
    try:
        diff = diff_recipes(*results, planner=planner or _default_planner(
            trust_remote_code=getattr(args, "trust_remote_code", False), untrusted=untrusted,
            cache=getattr(args, "cache", True)))
    except LocatedMistake as mistake:
        print(mistake.diagnostic.text(), file=sys.stderr)
        return EXIT_USAGE
    print(render_markdown(diff) if args.format == "markdown" else render_text(diff))
    return EXIT_OK
