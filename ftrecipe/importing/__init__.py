"""``ftrecipe import``: other tools' configs (axolotl, torchtune, LLaMA-Factory, Ultralytics) as recipes.

One module per tool holds its table (:class:`ftrecipe.importing.table.Format`); the engine runs it and the
command writes and checks the recipes. Torch-free, and each format module is imported only when named.
"""

from __future__ import annotations

import importlib

from ftrecipe.importing.table import Format

FORMATS = ("axolotl", "torchtune", "llamafactory", "ultralytics")
"""The formats ``ftrecipe import`` reads, each a module of this package."""


def get_format(name: str) -> Format:
    """The table of one format (``axolotl``, ...); KeyError for an unknown name."""
    if name not in FORMATS:
        raise KeyError(name)
    return importlib.import_module(f"ftrecipe.importing.{name}").FORMAT
