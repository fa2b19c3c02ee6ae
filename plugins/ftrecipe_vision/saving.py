"""The saved model as torchvision users load it: a ``state_dict`` in safetensors and the constructor call.

``model/model.safetensors`` holds the weights under torchvision's own names; ``model/torchvision.json``
says which builder and keyword arguments rebuild the architecture (``num_classes`` and the like) and
the class names in output order. :func:`card_snippet` is the code the model card shows, and a test runs it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

WEIGHTS_FILE = "model.safetensors"
DESCRIPTION_FILE = "torchvision.json"


def save_torchvision(model: Any, directory: Path, *, builder: str, kwargs: Mapping[str, Any], classes: Sequence[str],
                     extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and how to rebuild it into ``directory``; returns the weights file.

    ``kwargs`` are the builder's keyword arguments that shape the architecture (never ``weights``:
    the file holds them); ``extra`` adds what a user needs at inference (mean and std, image size)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in model.state_dict().items()}
    weights = directory / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": "pt", "builder": builder})
    description = {"builder": builder, "kwargs": dict(kwargs), "classes": list(classes), **(extra or {})}
    (directory / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return weights


def rebuild(directory: Path) -> Any:
    """The model saved in ``directory``, rebuilt with its torchvision constructor (what the card shows)."""
    import torchvision
    from safetensors.torch import load_file

    description = json.loads((directory / DESCRIPTION_FILE).read_text(encoding="utf-8"))
    model = torchvision.models.get_model(description["builder"], weights=None, **description["kwargs"])
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return model


def card_snippet(builder: str, kwargs: Mapping[str, Any], *, directory: str = "model") -> str:
    """Python that rebuilds the saved model with the torchvision constructor and loads its weights."""
    arguments = "".join(f", {key}={value!r}" for key, value in kwargs.items())
    return (
        "import torchvision\n"
        "from safetensors.torch import load_file\n\n"
        f"model = torchvision.models.get_model({builder!r}, weights=None{arguments})\n"
        f"model.load_state_dict(load_file({directory + '/' + WEIGHTS_FILE!r}))\n"
        "model.eval()\n"
    )
