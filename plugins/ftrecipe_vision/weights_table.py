"""torchvision's model builders and their weight files, as data: what a recipe may name, known torch-free.

``torchvision_weights.json`` is written by ``python -m ftrecipe_vision.weights_table`` from the installed
torchvision (a test checks that it still matches), so that `ftrecipe validate` can check ``model.base`` and
``model.weights`` and `ftrecipe run` can find the weight file in torch's cache before importing torch.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("torchvision_weights.json")
KINDS = {"classification": "", "detection": "detection", "segmentation": "segmentation", "video": "video",
         "optical_flow": "optical_flow", "quantization": "quantization"}


@functools.cache
def builders() -> dict[str, dict[str, Any]]:
    """Builder name -> ``{"kind", "enum", "default", "files": {weights name: file name}}``."""
    return json.loads(TABLE.read_text(encoding="utf-8"))["builders"]


def of_kind(kind: str) -> list[str]:
    return sorted(name for name, entry in builders().items() if entry["kind"] == kind)


def current() -> dict[str, Any]:
    """The table as the installed torchvision would write it (imports torchvision)."""
    import importlib

    import torchvision
    from torchvision import models

    table: dict[str, dict[str, Any]] = {}
    for kind, submodule in KINDS.items():
        module = importlib.import_module(f"torchvision.models.{submodule}") if submodule else models
        for name in models.list_models(module=module):
            if name in table:
                continue
            entry: dict[str, Any] = {"kind": kind, "enum": None, "default": None, "files": {}}
            try:
                enum = models.get_model_weights(name)
            except (ValueError, KeyError):
                enum = None
            if enum is not None:
                entry.update(enum=enum.__name__, default=getattr(enum, "DEFAULT", None) and enum.DEFAULT.name,
                             files={w.name: Path(w.url).name for w in enum})
            table[name] = entry
    return {"torchvision": torchvision.__version__.split("+")[0], "builders": dict(sorted(table.items()))}


if __name__ == "__main__":
    TABLE.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{TABLE}: {len(builders.__wrapped__())} builders")
