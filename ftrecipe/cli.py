"""The ``ftrecipe`` command line.

Exit codes: 0 success, 1 runtime failure, 2 bad input (invalid recipe, bad arguments, a plugin
conflict). Only ``run`` imports torch, and only once it is about to train.

:func:`entry` is the process's entry point (the ``ftrecipe`` script, ``python -m ftrecipe``): it may set
what belongs to the whole process (the libraries' console output collected, bitsandbytes left out where
nothing is quantised). :func:`main` alone, as tests and other programs call it, leaves the process as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ftrecipe import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep its usage line
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set training.learning_rate=1e-4 (repeatable)",
    )


def _add_review_flags(parser: argparse.ArgumentParser, *, plans: bool) -> None:
    parser.add_argument("--untrusted", action="store_true",
                        help="the recipe comes from someone else (a pull request): refuse paths that leave the repository"
                             + ("; show only counts of the data" if plans else ""))
    if plans:
        parser.add_argument("--trust-remote-code", action="store_true",
                            help="let the checkpoint's own Python code run (model.trust_remote_code alone does not)")
        parser.add_argument("--no-cache", dest="cache", action="store_false",
                            help="measure every model afresh instead of reusing an earlier plan's measurements "
                                 "(kept in $FTRECIPE_CACHE_DIR, else ~/.cache/ftrecipe)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ftrecipe", description="Fine-tuning from declarative YAML recipes.")
    parser.add_argument("--version", action="version", version=f"ftrecipe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser("validate", help="check recipes and point at every mistake")
    validate.add_argument("recipes", nargs="+", metavar="RECIPE")
    _add_overrides(validate)
    validate.add_argument("--format", choices=("text", "json", "github"), default="text")
    _add_review_flags(validate, plans=False)

    run = commands.add_parser("run", help="train a recipe")
    run.add_argument("recipe", metavar="RECIPE")
    _add_overrides(run)
    run.add_argument("--output", metavar="DIR", help="output directory (default: the recipe's output.dir)")
    run.add_argument("--max-steps", type=int, metavar="N", help="stop after N optimizer steps")
    run.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    run.add_argument("--smoke", action="store_true", help="tiny random model, a few examples, two steps")
    run.add_argument("--save-augmented", type=int, default=0, metavar="N", help="write N augmented examples to look at or listen to")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    run.add_argument("--debug", action="store_true", help="show tracebacks")

    plan = commands.add_parser("plan", help="what will train, the memory it needs and whether the data is enough, before any GPU is rented")
    plan.add_argument("recipes", nargs="+", metavar="RECIPE")
    _add_overrides(plan)
    plan.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    plan.add_argument("--probe", type=int, default=0, metavar="N", help="also run N real training steps here and print the measured memory next to the estimate")
    plan.add_argument("--check", action="store_true", help="exit 1 when a recipe does not fit its memory budget")
    plan.add_argument("--watch", action="store_true",
                      help="plan again each time a recipe file is saved, in this process (the imports are paid once), until Ctrl-C")
    plan.add_argument("--debug", action="store_true", help="show tracebacks")
    _add_review_flags(plan, plans=True)

    diff = commands.add_parser("diff", help="what changed between two recipes, and what it does to parameters, memory, data and compute")
    diff.add_argument("old", metavar="OLD", help="a recipe file, or git:REV:path")
    diff.add_argument("new", metavar="NEW", help="a recipe file, or git:REV:path")
    diff.add_argument("--format", choices=("text", "markdown"), default="text")
    _add_review_flags(diff, plans=True)

    schema = commands.add_parser("schema", help="print the JSON Schema of recipes (installed plugins included)")
    schema.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")

    plugins = commands.add_parser("plugins", help="list registered plugins")
    plugins.add_argument("--format", choices=("text", "json"), default="text")

    init = commands.add_parser("init", help="write a commented starter recipe for a modality")
    init.add_argument("modality")
    init.add_argument("--output", metavar="FILE", help="file to write (default: <modality>.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    imports = commands.add_parser("import", help="turn axolotl, torchtune, LLaMA-Factory or Ultralytics configs into commented recipes")
    imports.add_argument("format", choices=("axolotl", "torchtune", "llamafactory", "ultralytics"), metavar="FORMAT",
                         help="axolotl, torchtune, llamafactory or ultralytics (model.train(...) arguments / default.yaml keys)")
    imports.add_argument("configs", nargs="*", metavar="CONFIG", help="config files, or folders of them")
    imports.add_argument("-o", "--output", metavar="PATH",
                         help="recipe file (one config) or folder (several); default: <config name>.yaml here")
    imports.add_argument("--force", action="store_true", help="overwrite existing recipes (else they are refused)")
    imports.add_argument("--strict", action="store_true", help="refuse a config with any key not carried over (exit 2, at its line)")
    imports.add_argument("--keys", action="store_true", help="print the format's table of keys instead of importing")
    imports.add_argument("--markdown", action="store_true", help="with --keys: as a markdown table")
    return parser


# ---------------------------------------------------------------- commands


def cmd_validate(args: argparse.Namespace) -> int:
    from ftrecipe.diagnostics import render
    from ftrecipe.untrusted import untrusted_checked
    from ftrecipe.validation import validate_file

    results = untrusted_checked([validate_file(path, overrides=args.overrides) for path in args.recipes], args.untrusted)
    diagnostics = [d for result in results for d in result.diagnostics]
    if args.format == "json":
        print(json.dumps([{"recipe": r.source, "valid": r.ok, "diagnostics": [d.as_dict() for d in r.diagnostics]} for r in results], indent=2))
    else:
        if diagnostics:
            print(render(diagnostics, args.format))
        if args.format == "text":
            for result in results:
                if result.ok:
                    print(f"{result.source}: ok ({result.recipe.model.modality})")
    return EXIT_OK if all(r.ok for r in results) else EXIT_USAGE


def cmd_schema(args: argparse.Namespace) -> int:
    from ftrecipe.registry import PluginConflict, get_registry
    from ftrecipe.schema import json_schema_text

    registry = get_registry()
    try:
        registry.check_conflicts()
    except PluginConflict as error:
        print(f"ftrecipe: plugin conflict: {error}", file=sys.stderr)
        return EXIT_USAGE
    text = json_schema_text(registry)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace) -> int:
    from ftrecipe.plugin_listing import plugins_json, print_plugins
    from ftrecipe.registry import get_registry

    registry = get_registry()
    if args.format == "json":
        print(json.dumps(plugins_json(registry), indent=2))
    else:
        print_plugins(registry)
    return EXIT_USAGE if registry.conflicts else EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from ftrecipe.diagnostics import did_you_mean
    from ftrecipe.registry import get_registry

    registry = get_registry()
    record = registry.modalities.get(args.modality)
    if record is None:
        names = sorted(registry.modalities)
        hint = did_you_mean(args.modality, names)
        print(f"ftrecipe init: unknown modality '{args.modality}'{hint}; allowed: {', '.join(names)}", file=sys.stderr)
        return EXIT_USAGE
    target = Path(args.output or f"{args.modality}.yaml")
    if target.exists() and not args.force:
        print(f"ftrecipe init: {target} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_USAGE
    target.write_text(record.starter_recipe, encoding="utf-8")
    print(f"wrote {target}; check it with: ftrecipe validate {target}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ftrecipe.diagnostics import render
    from ftrecipe.validation import validate_file

    result = validate_file(args.recipe, overrides=args.overrides)
    if not result.ok:
        print(render(result.diagnostics, "text"), file=sys.stderr)
        return EXIT_USAGE
    if args.owns_process:
        from ftrecipe.libraries import leave_out

        recipe = result.recipe
        leave_out(*(["bitsandbytes"] if not recipe.uses_bitsandbytes else []),
                  *(["deepspeed"] if recipe.hardware.strategy != "deepspeed" else []))
    from ftrecipe.errors import RecipeRuntimeError, RunFailure
    from ftrecipe.registry import get_registry
    from ftrecipe.runner.preflight import preflight

    try:  # what can be found without torch is found before it is imported
        preflight(result.recipe, result.base_dir, get_registry(), output=args.output, resume=args.resume, smoke=args.smoke)
    except RecipeRuntimeError as error:
        print(result.diagnostic(error.path, error.message).text(), file=sys.stderr)
        return EXIT_USAGE
    except RunFailure as error:
        print(f"ftrecipe run: {error}", file=sys.stderr)
        return EXIT_FAILURE
    from ftrecipe.runner.entry import RunOptions, run_recipe  # torch is imported from here on

    options = RunOptions(output=args.output, max_steps=args.max_steps, resume=args.resume, smoke=args.smoke,
                         save_augmented=args.save_augmented, quiet=args.quiet, debug=args.debug, argv=args.argv)
    return run_recipe(result, options)


def cmd_plan(args: argparse.Namespace) -> int:
    from ftrecipe.plan.command import run_plan

    return run_plan(args)


def cmd_diff(args: argparse.Namespace) -> int:
    from ftrecipe.plan.diff import run_diff

    return run_diff(args)


def cmd_import(args: argparse.Namespace) -> int:
    from ftrecipe.importing.command import run_import

    return run_import(args)


COMMANDS = {"import": cmd_import, "validate": cmd_validate, "run": cmd_run, "plan": cmd_plan, "diff": cmd_diff, "schema": cmd_schema, "plugins": cmd_plugins, "init": cmd_init}


def main(argv: Sequence[str] | None = None, *, owns_process: bool = False) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the resume hint and relaunching
    args.owns_process = owns_process
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if owns_process and args.command in ("run", "plan", "diff") and not getattr(args, "debug", False):
        from ftrecipe.libraries import collect_library_output

        collect_library_output()  # before anything imports a library
    if owns_process and args.command in ("plan", "diff"):
        # nothing here starts DeepSpeed; Accelerate imports it for isinstance checks where installed
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # (and its accelerator detection would print)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry(argv: Sequence[str] | None = None) -> None:
    """The ``ftrecipe`` command: :func:`main`, owning the process."""
    raise SystemExit(main(argv, owns_process=True))


if __name__ == "__main__":
    entry()
