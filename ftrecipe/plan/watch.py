"""`ftrecipe plan RECIPE... --watch`: plan again each time a recipe is saved, in one process, until Ctrl-C.

Someone tuning a recipe plans it many times in a row. Each fresh `ftrecipe plan` pays the imports of
torch and the modality's libraries (several seconds) before it answers, and the plan cache cannot answer
an edit to the model's structure (a LoRA rank, a freeze plan, a sequence length). A watching process
pays the imports once: every later plan costs only the validation, and the meta build and traces that
the edit calls for (nothing more where the cache answers).

The recipes are polled by content (an editor that saves through a temporary file and a rename, or a
checkout that rewrites the file unchanged, re-plans only when the text changed), and a change is
planned once it has held still for one poll, so a half-written file is not planned. A mistake in the
edited recipe is shown, located, like any other plan's, and the watch goes on. The local files and
folders a recipe's ``model`` and ``data`` name (a CSV, a manifest, a model folder) are watched too, by
size and time (a folder by its own entries, not every file under it), so new data is planned as well.
In text, each plan after the first ends with what the edit changed since that recipe's last plan, as
`ftrecipe diff` would say it: the resolved keys, then only the plan's numbers that moved. The plugins'
code is read once: a change to a plugin is planned by a new watch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ftrecipe.validation import ValidationResult

POLL_SECONDS = 0.3


def pause(seconds: float) -> None:
    """Wait between polls (a test replaces it with edits of its own)."""
    time.sleep(seconds)


def fingerprint(paths: Sequence[str]) -> tuple[str | None, ...]:
    """The content digest of each recipe file, as the plan cache takes it (None for one that is missing
    or unreadable just now)."""
    from ftrecipe.plan.cache import content_digest

    digests: list[str | None] = []
    for path in paths:
        try:
            digests.append(content_digest(path))
        except OSError:
            digests.append(None)
    return tuple(digests)


def input_stamps(inputs: Sequence[Path]) -> tuple[tuple[str, int, int] | None, ...]:
    """Size and modification time of each named input (a folder's own: an entry added or removed), cheap
    enough to poll a large dataset folder; None for one that is gone."""
    stamps: list[tuple[str, int, int] | None] = []
    for path in inputs:
        try:
            info = path.stat()
        except OSError:
            stamps.append(None)
            continue
        stamps.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(stamps)


def since_last(old: ValidationResult, before: dict[str, Any], new: ValidationResult, after: dict[str, Any]) -> str:
    """What an edit did, in ``ftrecipe diff``'s words: the resolved keys that changed since the recipe's
    last plan and the plan's numbers that moved with them (those that did not move are left out)."""
    from ftrecipe.plan.diff import Side, change_lines, compare, row_lines

    diff = compare(old, Side(str(old.source), before), new, Side(str(new.source), after))
    lines = [f"since the last plan of {new.source}:", *change_lines(diff.changes)]
    lines += row_lines([row for row in diff.rows if row.before != row.after])
    lines += [f"  ! new warning: {w}" for w in diff.new_warnings] + [f"  - warning gone: {w}" for w in diff.gone_warnings]
    return "\n".join(lines)


def changed_names(paths: Sequence[str], before: tuple[Any, ...], after: tuple[Any, ...]) -> list[str]:
    return [path for path, old, new in zip(paths, before, after) if old != new]


def watch(paths: Sequence[str], plan_once: Callable[[], int], *, out: TextIO | None = None,
          named: Callable[[], Sequence[Path]] = lambda: ()) -> int:
    """Plan now, then again after every saved change to ``paths`` or to the inputs ``named()`` gives
    (those the last plans' recipes name), until Ctrl-C (exit 0: stopping a watch is how it ends).
    ``plan_once`` prints one plan (or its errors) and returns its exit code."""
    out = out or sys.stdout
    inputs: list[Path] = []

    def snapshot() -> tuple[Any, ...]:
        """The recipes' digests, then the inputs' stamps, in the order of :func:`names`."""
        return fingerprint(paths) + input_stamps(inputs)

    def names() -> list[str]:
        return [*paths, *map(str, inputs)]

    seen = snapshot()
    count = 0
    try:
        while True:
            count += 1
            started = time.perf_counter()
            code = plan_once()
            inputs = list(named())
            # the recipes as they were before this plan (one saved during it is planned next), its inputs now
            seen = seen[: len(paths)] + input_stamps(inputs)
            status = "planned" if code == 0 else f"exit {code}"
            print(f"-- plan {count} {status} in {time.perf_counter() - started:.1f} s; watching {', '.join(paths)}"
                  f"{f' and {len(inputs)} input(s) it names' if inputs else ''} (Ctrl-C stops) --", file=out, flush=True)
            while True:
                pause(POLL_SECONDS)
                now = snapshot()
                if now == seen:
                    continue
                pause(POLL_SECONDS)  # planned once it holds still: not a file half written
                settled = snapshot()
                if settled != now:
                    continue
                changed = changed_names(names(), seen, settled)
                seen = settled
                missing = [path for path, digest in zip(paths, settled) if digest is None]
                if missing:
                    print(f"-- {', '.join(missing)}: missing; waiting for it to come back --", file=out, flush=True)
                    continue
                print(f"\n-- {', '.join(changed)} changed at {time.strftime('%H:%M:%S')} --", file=out, flush=True)
                break
    except KeyboardInterrupt:
        print(f"-- stopped watching after {count} plan{'s' if count != 1 else ''} --", file=out, flush=True)
        return 0
