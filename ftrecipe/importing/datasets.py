"""Data sources of foreign configs -> the recipe's ``data`` section (format, train/eval, form, columns).

Local JSON Lines, JSON, CSV and Parquet files and Hugging Face dataset ids are carried; a prompt
format ftrecipe has no form for (axolotl's ``input_output`` segments, a custom prompt strategy) is
listed as not carried over, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ftrecipe.importing.table import NO_EQUIVALENT, OTHER_MEANING, Context

LOCAL_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".csv": "csv"}
"""File suffix -> the recipe's ``data.format`` (a ``.json`` file must hold JSON Lines)."""
DS_TYPES = {"json": "jsonl", "parquet": "parquet", "csv": "csv"}

ALPACA_NOTE = ("axolotl's alpaca prompt opens with a 'Below is an instruction...' preamble; ftrecipe's instruction form "
               "writes the same ### Instruction / ### Input / ### Response sections without it")


def source_format(path: str, ds_type: str | None = None) -> tuple[str, bool]:
    """The recipe's ``data.format`` for a path or dataset id, and whether it is a local file."""
    lowered = path.lower()
    for suffix, fmt in LOCAL_FORMATS.items():
        if lowered.endswith(suffix):
            return fmt, True
    if ds_type in DS_TYPES:
        return DS_TYPES[ds_type], True
    if path.startswith(("./", "../", "/", "~")):
        return "hf", True  # a save_to_disk folder
    return "hf", False


def _form(kind: Any, item: Mapping[str, Any], where: str, ctx: Context) -> bool:
    """Write the form (and its columns) for an axolotl dataset ``type``; False if it has no form here."""
    origin = f"{where}.type: {kind}"
    if not isinstance(kind, str):
        ctx.drop(f"{where}.type", NO_EQUIVALENT, "a custom prompt format; ftrecipe's forms are completion, instruction, chat")
        return False
    base, _, style = kind.partition(":")
    if base == "alpaca":
        ctx.set("data.form", "instruction", origin)
        ctx.note(f"{where}.type", ALPACA_NOTE + (f"; the ':{style}' prompt style is not carried" if style else ""))
        return True
    if kind == "completion":
        ctx.set("data.form", "completion", origin)
        ctx.set("data.template", "", f"{origin} (no prompt: the loss is on the whole text)")
        ctx.set("data.columns.completion", item.get("field") or "text", f"{where}.field: {item.get('field') or 'text'}")
        return True
    if kind == "chat_template":
        ctx.set("data.form", "chat", origin)
        ctx.note(f"{where}.type", "ftrecipe learns the last assistant turn of each chat; axolotl (roles_to_train "
                                  "default) every assistant turn")
        return True
    if kind == "input_output":
        ctx.drop(f"{where}.type", NO_EQUIVALENT, "segments with their own train/ignore labels; ftrecipe's forms have "
                                                 "one prompt and one completion (convert the rows to prompt/completion)")
        return False
    ctx.drop(f"{where}.type", NO_EQUIVALENT, f"no ftrecipe form for axolotl's {kind!r} prompt strategy "
                                             "(carried: alpaca, completion, chat_template)")
    return False


COLUMN_FIELDS = {"field_instruction": "instruction", "field_input": "input", "field_output": "output",
                 "field_messages": "messages", "field": None}
"""axolotl dataset field names -> ftrecipe's canonical columns (``field`` is read with ``completion``)."""

CHAT_DEFAULTS = {"message_field_role": "role", "message_field_content": "content", "roles_to_train": ["assistant"]}


def _item_keys(item: Mapping[str, Any], where: str, fmt: str, hub: bool, ctx: Context, eval_only: bool) -> None:
    for key, value in item.items():
        path = f"{where}.{key}"
        origin = f"{path}: {value}"
        if key in ("path", "type") or value is None:
            continue
        if key in COLUMN_FIELDS:
            if COLUMN_FIELDS[key] is not None:
                ctx.set(f"data.columns.{COLUMN_FIELDS[key]}", value, origin)
        elif key == "ds_type":
            continue  # read by source_format
        elif key == "split" and hub and not eval_only:
            ctx.set("data.train_split", value, origin)
        elif key == "split" and hub:
            ctx.set("data.eval_split", value, origin)
        elif key == "name" and hub:
            ctx.set("data.subset", value, origin)
        elif key in CHAT_DEFAULTS and value == CHAT_DEFAULTS[key]:
            ctx.kept.append((path, "ftrecipe's chat form reads the same"))
        elif key == "data_files":
            ctx.drop(path, NO_EQUIVALENT, "ftrecipe reads a hub dataset's splits, not files picked from it: download "
                                          "the files and point data.train at them")
        else:
            ctx.drop(path, NO_EQUIVALENT, f"no ftrecipe equivalent of the dataset key {key!r}")


def dataset_section(value: Any, ctx: Context, key: str, *, eval_only: bool = False) -> dict[str, Any]:
    """axolotl ``datasets`` / ``test_datasets`` -> the data section, written through ``ctx``.

    One source per recipe: several local files of one format and type become a list; any other
    further dataset is listed as not carried over.
    """
    items = value if isinstance(value, list) else [value]
    target = "data.eval" if eval_only else "data.train"
    paths: list[str] = []
    first_fmt: str | None = None
    for index, item in enumerate(items):
        where = f"{key}[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("path"), str):
            ctx.drop(where, NO_EQUIVALENT, "a dataset without a path")
            continue
        fmt, local = source_format(item["path"], item.get("ds_type"))
        if first_fmt is None:
            first_fmt = fmt
            if eval_only and "data.format" in ctx.values and ctx.values["data.format"][0] != fmt:
                ctx.drop(where, OTHER_MEANING, "evaluation data in another format than the training data")
                return {}
            if not eval_only:
                ctx.set("data.format", fmt, f"{where}.path: {item['path']}")
                if item.get("type") is not None:
                    _form(item["type"], item, where, ctx)
                elif fmt != "hf":
                    ctx.note(where, "no type: ftrecipe reads prompt/completion columns")
            _item_keys(item, where, fmt, not local, ctx, eval_only)
            if local and not item["path"].startswith("/"):
                ctx.note(f"{where}.path", "axolotl reads it from the working directory; a recipe reads it relative "
                                          "to the recipe's folder")
            paths.append(item["path"])
            continue
        same_kind = local and fmt == first_fmt and first_fmt != "hf" and item.get("type") == items[0].get("type")
        if same_kind and set(item) <= {"path", "type", "ds_type"}:
            paths.append(item["path"])
        else:
            ctx.drop(where, NO_EQUIVALENT, "ftrecipe trains on one data source per recipe (several local files of "
                                           "one format and type are carried as a list)")
    if paths:
        origin = f"{key}[*].path" if len(paths) > 1 else f"{key}[0].path: {paths[0]}"
        ctx.set(target, paths if len(paths) > 1 else paths[0], origin)
    return {}


def no_data(ctx: Context, tool: str) -> None:
    """Where no data source was carried, a data section that validates and says what is missing."""
    if "data.format" not in ctx.values:
        ctx.values["data.format"] = ("jsonl", f"no {tool} dataset carried over (see above): set data.train to your data")
