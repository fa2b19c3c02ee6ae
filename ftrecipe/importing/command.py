"""``ftrecipe import FORMAT CONFIG... [-o OUT]``: write one checked recipe per config, one summary line each.

Configs may be files or folders (every ``*.yml`` / ``*.yaml`` under them). Each recipe is validated
before it is written; a file is written atomically and never over an existing one without ``--force``.
``--strict`` refuses a config with any key not carried over, at the key's line. Exit 2 when any config
was refused, unreadable, or gave a recipe that does not validate; else 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from ftrecipe.importing import get_format
from ftrecipe.importing.engine import Imported, SourceError, convert, render_recipe, short
from ftrecipe.importing.table import Format

EXIT_OK, EXIT_USAGE = 0, 2
SUFFIXES = (".yml", ".yaml")


def expand(configs: list[str]) -> tuple[list[Path], bool]:
    """The config files named (folders searched recursively), and whether a folder or several were named."""
    found: list[Path] = []
    for name in configs:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        else:
            found.append(path)
    many = len(configs) > 1 or any(Path(name).is_dir() for name in configs)
    return found, many


def output_names(sources: list[Path]) -> list[str]:
    """A recipe file name per source: its stem, with its folder's name in front where stems collide
    (``llama-2/qlora.yml`` and ``falcon/qlora.yml`` -> ``llama-2-qlora.yaml``, ``falcon-qlora.yaml``)."""
    stems = [p.stem for p in sources]
    names = [f"{p.parent.name}-{p.stem}" if stems.count(p.stem) > 1 and p.parent.name else p.stem for p in sources]
    return [f"{name}-{i}.yaml" if names.count(name) > 1 else f"{name}.yaml" for i, name in enumerate(names)]


def write_new(target: Path, text: str, *, force: bool) -> None:
    """Write ``text`` atomically: a temporary file in the same folder, then linked (refusing an existing
    file) or, with ``force``, renamed over it. Raises FileExistsError without ``force``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        if force:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)  # fails if the target exists, even if it appeared a moment ago
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def summary(result: Imported, target: Path, valid: bool) -> str:
    """One line a person can scan down for fifty configs."""
    parts = [f"{len(result.carried)} keys carried", f"{len(result.defaults)} {result.fmt.tool} defaults written"]
    if result.dropped:
        parts.append(f"{len(result.dropped)} not carried over ({', '.join(d.key for d in result.dropped)})")
    else:
        parts.append("nothing dropped")
    state = "validates" if valid else "does NOT validate"
    return f"{result.source} -> {target}: {', '.join(parts)}; {state}"


def import_one(fmt: Format, source: Path, target: Path, args: argparse.Namespace) -> int:
    """Import, check and write one config; prints its summary (and problems) and returns its exit code."""
    from ftrecipe.diagnostics import render
    from ftrecipe.validation import validate_text

    try:
        text = source.read_text(encoding="utf-8")
        result = convert(fmt, text, str(source))
    except (OSError, UnicodeDecodeError) as error:
        print(f"ftrecipe import: {source}: cannot read: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SourceError as error:
        print(f"ftrecipe import: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.strict and result.dropped:
        for item in result.dropped:
            print(item.located(str(source)), file=sys.stderr)
        print(f"{source}: refused (--strict): {len(result.dropped)} keys would not be carried over", file=sys.stderr)
        return EXIT_USAGE
    if target.resolve() == source.resolve():
        print(f"ftrecipe import: {target} is the config itself; name another output with -o", file=sys.stderr)
        return EXIT_USAGE
    if target.exists() and not args.force:
        print(f"ftrecipe import: {target} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_USAGE
    command = f"ftrecipe import {fmt.name} {source} -o {target}"
    recipe = render_recipe(result, str(target), command)
    validation = validate_text(recipe, source=str(target))
    try:
        write_new(target, recipe, force=args.force)
    except FileExistsError:
        print(f"ftrecipe import: {target} exists; pass --force to overwrite it", file=sys.stderr)
        return EXIT_USAGE
    print(summary(result, target, validation.ok))
    for item in result.dropped:
        where = f"line {item.mark.line}" if item.mark else "-"
        print(f"  {where:>9}  {item.key}: {short(item.value, 40)}: {item.kind}: {item.reason}")
    if not validation.ok:
        print(render(validation.diagnostics, "text"), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def run_import(args: argparse.Namespace) -> int:
    from ftrecipe.importing.render import keys_markdown, keys_text

    fmt = get_format(args.format)
    if args.keys:
        sys.stdout.write(keys_markdown(fmt) if args.markdown else keys_text(fmt))
        return EXIT_OK
    if not args.configs:
        print("ftrecipe import: name a config file or folder (or --keys to see the table)", file=sys.stderr)
        return EXIT_USAGE
    sources, many = expand(args.configs)
    missing = [p for p in sources if not p.is_file()]
    if missing or not sources:
        print(f"ftrecipe import: no config at {', '.join(map(str, missing)) or ' '.join(args.configs)}", file=sys.stderr)
        return EXIT_USAGE
    if many:
        folder = Path(args.output or ".")
        if folder.is_file():
            print(f"ftrecipe import: -o {folder} is a file; several configs need a folder", file=sys.stderr)
            return EXIT_USAGE
        targets = [folder / name for name in output_names(sources)]
    else:
        chosen = Path(args.output) if args.output else Path(output_names(sources)[0])
        targets = [chosen / output_names(sources)[0] if chosen.is_dir() else chosen]
    codes = [import_one(fmt, source, target, args) for source, target in zip(sources, targets)]
    if many:
        failed = sum(code != EXIT_OK for code in codes)
        print(f"{len(codes)} configs: {len(codes) - failed} imported, {failed} refused or invalid")
    return EXIT_USAGE if any(codes) else EXIT_OK
