"""A format's table for people: ``ftrecipe import FORMAT --keys`` (text) and the README (markdown)."""

from __future__ import annotations

from ftrecipe.importing import FORMATS, get_format
from ftrecipe.importing.engine import short
from ftrecipe.importing.table import Default, Format, Row


def _how(row: Row) -> str:
    if row.kind is not None:
        return f"not carried ({row.kind}): {row.how}"
    return row.how


def keys_text(fmt: Format) -> str:
    """Every row of the table, then the defaults written where the config leaves a key out."""
    width = max(len(row.source) for row in fmt.rows)
    target_width = max(len(row.target or "-") for row in fmt.rows)
    lines = [f"ftrecipe import {fmt.name}: {fmt.what}", "",
             f"{'source key':<{width}}  {'recipe key':<{target_width}}  how"]
    for row in fmt.rows:
        lines.append(f"{row.source:<{width}}  {row.target or '-':<{target_width}}  {_how(row)}")
    lines += ["", "any other key: " + fmt.unknown, "",
              f"{fmt.tool} defaults written when the config leaves the key out (ftrecipe's differ):"]
    for default in fmt.defaults:
        lines.append(f"  {default.target}: {_written(default)}  ({fmt.tool} {default.source_key}: "
                     f"{short(default.source_value)}; ftrecipe: {short(default.ftrecipe_value)})  {default.citation}")
    return "\n".join(lines) + "\n"


def _written(default: Default) -> str:
    value = short(default.source_value) if callable(default.value) else short(default.value)
    return f"{value} ({default.note})" if default.note else value


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def keys_markdown(fmt: Format) -> str:
    """One format's table as markdown: its keys, then its defaults with their citations."""
    lines = [f"#### `ftrecipe import {fmt.name}`: {fmt.what}", "",
             "| source key | recipe key | how |", "|---|---|---|"]
    for row in fmt.rows:
        target = f"`{row.target}`" if row.target else "-"
        lines.append(f"| `{row.source}` | {target} | {_cell(_how(row))} |")
    lines += [f"| any other key | - | {_cell(fmt.unknown)} |", "",
              f"{fmt.tool}'s defaults, written where a config leaves the key out:", "",
              f"| recipe key | written | {fmt.tool} | ftrecipe's default | source |", "|---|---|---|---|---|"]
    for default in fmt.defaults:
        lines.append(f"| `{default.target}` | `{_written(default)}` | `{default.source_key}: "
                     f"{_cell(short(default.source_value))}` | `{short(default.ftrecipe_value)}` | "
                     f"[{default.citation.rsplit('/', 1)[-1]}]({default.citation}) |")
    return "\n".join(lines) + "\n"


def readme_tables() -> str:
    """The README's tables for every format (a test can compare the README with this)."""
    return "\n".join(keys_markdown(get_format(name)) for name in FORMATS)
