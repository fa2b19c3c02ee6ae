"""`ftrecipe plan RECIPE... [--set K=V] [--format text|json|markdown] [--probe N] [--check] [--watch]`.

Exit codes: 0 planned, 1 a recipe that cannot be planned (or, with ``--check``, does not fit its
budget), 2 bad input (an invalid recipe, a base whose config is nowhere at hand, ``--watch`` with
``--check`` or ``--probe``). ``--watch`` plans again on every saved change until Ctrl-C, then exits 0
(:mod:`ftrecipe.plan.watch`).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def run_plan(args: argparse.Namespace) -> int:
    if not getattr(args, "watch", False):
        return plan_once(args)
    if args.check or args.probe:
        print("ftrecipe plan: --watch plans until Ctrl-C; --check and --probe are for a single plan", file=sys.stderr)
        return EXIT_USAGE
    from ftrecipe.plan.watch import watch

    earlier: dict[str, tuple[Any, dict]] = {}
    return watch(args.recipes, lambda: plan_once(args, earlier), named=lambda: watched_inputs(earlier))


def watched_inputs(earlier: dict[str, tuple[Any, dict]]) -> list[Any]:
    """The local files and folders the last planned recipes name (their data, a local model)."""
    from pathlib import Path

    from ftrecipe.plan.cache import named_inputs

    found: dict[str, Path] = {}
    for result, _ in earlier.values():  # (what the plan cache stamps: the recipe as it was planned)
        for _, paths in named_inputs(result.recipe.model_dump(mode="json"), Path(result.base_dir)):
            found.update((str(path.resolve()), path) for path in paths)
    return sorted(found.values())


def plan_once(args: argparse.Namespace, earlier: dict[str, tuple[Any, dict]] | None = None) -> int:
    """Plan every recipe of ``args`` once and print the plans. ``earlier`` (a watch's memory: each
    recipe's last validated recipe and plan) adds, in text, what changed since that recipe's last plan."""
    from ftrecipe.diagnostics import render
    from ftrecipe.errors import RecipeRuntimeError, RunFailure
    from ftrecipe.hub import never_download
    from ftrecipe.plan import render as show
    from ftrecipe.libraries import adopt_library_loggers
    from ftrecipe.untrusted import untrusted_checked
    from ftrecipe.validation import validate_file

    never_download()
    results = untrusted_checked([validate_file(path, overrides=args.overrides) for path in args.recipes], args.untrusted)
    invalid = [d for r in results for d in r.diagnostics if d.severity == "error"]
    if invalid:
        print(render(invalid, "text"), file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "owns_process", False):
        from ftrecipe.libraries import leave_out

        # a plan quantises nothing (NF4 and 8-bit states are arithmetic) and starts no DeepSpeed engine;
        # a probe runs real steps, on one process
        leave_out("deepspeed", *(["bitsandbytes"] if not (args.probe and any(r.recipe.uses_bitsandbytes for r in results)) else []))
    from ftrecipe.plan.build import plan_recipe

    code = EXIT_OK
    planned: list[tuple[Any, dict]] = []  # (the validated recipe, its plan)
    for result in results:
        try:
            plan = plan_recipe(result, trust_remote_code=args.trust_remote_code, untrusted=args.untrusted,
                               cache=getattr(args, "cache", True)).as_dict()
            if args.probe:
                from ftrecipe.plan.probe import probe

                plan["memory"]["probe"] = probe(result, args.probe)
        except RecipeRuntimeError as error:
            print(result.diagnostic(error.path, error.message).text(), file=sys.stderr)
            return EXIT_USAGE
        except (NotImplementedError, RunFailure) as error:
            print(f"ftrecipe plan: {result.source}: {error}", file=sys.stderr)
            code = EXIT_FAILURE
            continue
        except Exception as error:  # noqa: BLE001 - the CLI's last line of defence
            if args.debug:
                traceback.print_exc()
            print(f"ftrecipe plan: {result.source}: {type(error).__name__}: {error}"
                  + ("" if args.debug else " (run again with --debug for the traceback)"), file=sys.stderr)
            code = EXIT_FAILURE
            continue
        finally:
            adopt_library_loggers()  # the console handlers the libraries gave themselves, to the collector
        planned.append((result, plan))
        if args.check and plan["memory"]["verdict"] == "does not fit":
            code = max(code, EXIT_FAILURE)
    plans = [plan for _, plan in planned]
    if args.format == "json":
        print(json.dumps(plans[0] if len(plans) == 1 and len(results) == 1 else plans, indent=2), flush=True)
    else:
        print(("\n\n" if args.format == "text" else "\n\n---\n\n").join(
            (show.text if args.format == "text" else show.markdown)(plan) for plan in plans), flush=True)
    if earlier is not None:
        from ftrecipe.plan.watch import since_last

        for result, plan in planned:
            if args.format == "text" and str(result.source) in earlier:
                print("\n" + since_last(*earlier[str(result.source)], result, plan), flush=True)
            earlier[str(result.source)] = (result, plan)
    if args.check and code == EXIT_FAILURE:
        over = [p["recipe"] for p in plans if p["memory"]["verdict"] == "does not fit"]
        if over:
            print(f"ftrecipe plan: does not fit its memory budget: {', '.join(over)}", file=sys.stderr)
    return code
