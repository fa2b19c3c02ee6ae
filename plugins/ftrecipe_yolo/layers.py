"""The freeze grammar on an Ultralytics detector: blocks and layer rows of its model YAML.

An Ultralytics model is one ``nn.Sequential`` (``model.0`` ... ``model.N``) whose rows are the YAML's
``backbone`` list followed by its ``head`` list; the last row is the detection layer. So

- ``backbone``: rows ``0 .. len(backbone) - 1``;
- ``neck``: the ``head`` list's rows before the detection layer (upsampling, concatenation, fusion);
- ``head``: the detection layer itself.

The recipe's plan becomes the list Ultralytics' own ``freeze`` argument takes (row numbers, or module
names below a row such as ``"22.cv2"``): Ultralytics re-enables any parameter frozen any other way.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from ftrecipe.plugin import RecipeRuntimeError

BLOCKS = ("backbone", "neck", "head")


@dataclass(frozen=True)
class Blocks:
    """Row numbers of each block of one model."""

    backbone: list[int]
    neck: list[int]
    head: list[int]

    @classmethod
    def of(cls, model: Any) -> Blocks:
        spec = model.yaml
        rows = len(spec["backbone"]) + len(spec["head"])
        first_head = len(spec["backbone"])
        return cls(list(range(first_head)), list(range(first_head, rows - 1)), [rows - 1])

    def get(self, name: str) -> list[int]:
        return getattr(self, name)

    def as_dict(self) -> dict[str, list[int]]:
        return {name: self.get(name) for name in BLOCKS}


def _module_names(model: Any) -> list[str]:
    """Names below the row list, without the leading ``model.`` (``"3"``, ``"22.cv2.0"``)."""
    return [name.removeprefix("model.") for name, _ in model.named_modules() if name.startswith("model.")]


def freeze_list(recipe: Any, model: Any) -> tuple[list[int | str], dict[str, list[int]]]:
    """Ultralytics' ``freeze`` argument for the recipe's plan, and the frozen rows per block (for the report)."""
    plan, blocks = recipe.freeze, Blocks.of(model)
    rows: set[int] = set()
    modules: set[str] = set()
    if plan.strategy == "transfer":
        backbone = blocks.backbone
        if plan.unfreeze_stack not in (None, "backbone"):
            raise RecipeRuntimeError(("freeze", "unfreeze_stack"), "transfer freezes the backbone; only 'backbone' can be unfrozen from the top")
        rows.update(backbone[: len(backbone) - plan.unfreeze_top] if plan.unfreeze_top else backbone)
    elif plan.strategy == "partial":
        names = _module_names(model)
        for i, pattern in enumerate(plan.freeze):
            if pattern in BLOCKS:
                rows.update(blocks.get(pattern))
                continue
            bare = pattern.removeprefix("model.")
            matched = [n for n in names if fnmatch.fnmatchcase(n, bare)]
            if not matched:
                raise RecipeRuntimeError(("freeze", "freeze", i), f"'{pattern}' names no block ({', '.join(BLOCKS)}) and no module "
                                         f"(e.g. model.0, model.{blocks.head[0]}.cv2)")
            for name in matched:
                if "." in name:
                    modules.add(name)
                else:
                    rows.add(int(name))
        if plan.freeze_layers is not None:
            stack = plan.freeze_layers.stack or "backbone"
            if stack not in BLOCKS:
                raise RecipeRuntimeError(("freeze", "freeze_layers", "stack"), f"no block '{stack}' (blocks: {', '.join(BLOCKS)})")
            members = blocks.get(stack)
            rows.update(members[i] for i in plan.freeze_layers.resolve(len(members)))
    modules = {m for m in modules if int(m.split(".")[0]) not in rows}
    frozen = {name: [i for i, row in enumerate(blocks.get(name)) if row in rows] for name in BLOCKS}
    return [*sorted(rows), *sorted(modules)], {name: idx for name, idx in frozen.items() if idx}
