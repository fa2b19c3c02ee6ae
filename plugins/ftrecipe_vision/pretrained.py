"""Pre-trained torchvision weights: found in torch's cache or a local file, never fetched behind a user's back.

``model.weights`` names a torchvision weights entry of ``model.base`` (``IMAGENET1K_V2``, ``COCO_V1``,
``DEFAULT``) or a local ``.pth`` / ``.safetensors`` file. An entry is read from torch's hub cache
(``$TORCH_HOME/hub/checkpoints``, where torchvision keeps what it downloads); where it is absent and
download.pytorch.org answers, torchvision downloads it as it always does; offline, the run stops with
the command that fetches it. :func:`weights_problems` says the same before torch is imported.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftrecipe.plugin import Problem, RecipeRuntimeError
from ftrecipe_vision.weights_table import builders

WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin")
DOWNLOAD_HOST = "download.pytorch.org"
KEY = ("model", "weights")


def hub_checkpoints() -> Path:
    """Where torchvision keeps downloaded weights (``torch.hub.get_dir()/checkpoints``), found torch-free."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def is_weight_file(spec: str) -> bool:
    return spec.lower().endswith(WEIGHT_FILE_SUFFIXES) or "/" in spec or "\\" in spec


@functools.cache
def download_reachable(timeout: float = 3.0) -> bool:
    """Can this machine open a connection to PyTorch's download server? (Asked once per process.)"""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((DOWNLOAD_HOST, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def entry_name(builder: str, spec: str) -> str | None:
    """The weights entry ``spec`` names (``DEFAULT`` resolved), or None where ``builder`` has no such entry."""
    entry = builders().get(builder)
    if entry is None or not entry["files"]:
        return None
    name = entry["default"] if spec == "DEFAULT" else spec
    return name if name in entry["files"] else None


def fetch_command(builder: str, name: str) -> str:
    enum = builders()[builder]["enum"]
    return f"python -c \"import torchvision; torchvision.models.get_weight('{enum}.{name}').get_state_dict(progress=True)\""


def weights_problems(builder: str, spec: str | None, base_dir: Path, key: tuple[str | int, ...] = KEY) -> Iterator[Problem]:
    """Why ``spec`` cannot be loaded for ``builder`` on this machine now (torch-free): a missing local file,
    an entry that ``builder`` does not have, or one absent from torch's cache while offline."""
    if spec is None:
        return
    if is_weight_file(spec):
        path = (base_dir / spec).expanduser()
        if not path.is_file():
            yield Problem(key, f"no weights file at '{spec}' (looked for {path})")
        return
    entry = builders().get(builder)
    if entry is None:
        return  # model.base is checked by validate
    name = entry_name(builder, spec)
    if name is None:
        known = ", ".join(["DEFAULT", *entry["files"]]) if entry["files"] else "none (train it with init: scratch)"
        yield Problem(key, f"{builder} has no weights '{spec}' in torchvision; it has: {known}")
        return
    if not (hub_checkpoints() / entry["files"][name]).is_file() and not download_reachable():
        yield Problem(key, f"the {builder} weights {name} are not in torch's cache ({hub_checkpoints()}) and "
                           f"download.pytorch.org cannot be reached; on a connected machine run\n    {fetch_command(builder, name)}\n"
                           f"  and copy {entry['files'][name]} into that folder (or set model.weights to a local file)")


def load_weights(spec: str, *, builder: str, base_dir: Path, key: tuple[str | int, ...] = KEY) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state_dict, meta)`` of weights entry or file ``spec`` for torchvision's ``builder``.

    ``meta`` holds what the entry knows (``categories``, ``mean``, ``std``, ``resize_size``,
    ``crop_size``, ``name``); a local file has none. Problems become :class:`RecipeRuntimeError` at ``key``.
    """
    for problem in weights_problems(builder, spec, base_dir, key):
        raise RecipeRuntimeError(problem.path, problem.message)
    if is_weight_file(spec):
        return read_state_dict((base_dir / spec).expanduser(), key), {"name": spec}
    from torchvision.models import get_weight

    name = entry_name(builder, spec)
    weights = get_weight(f"{builders()[builder]['enum']}.{name}")
    try:
        state = weights.get_state_dict(progress=False, check_hash=False)
    except (OSError, RuntimeError) as error:
        raise RecipeRuntimeError(key, f"could not read the {builder} weights {name}: {error}\n  {fetch_command(builder, name)}") from error
    meta: dict[str, Any] = {"name": f"{builders()[builder]['enum']}.{name}", **{k: v for k, v in weights.meta.items() if k == "categories"}}
    transforms = weights.transforms()
    for field in ("mean", "std", "resize_size", "crop_size"):
        if hasattr(transforms, field):
            value = getattr(transforms, field)
            meta[field] = list(value) if isinstance(value, (list, tuple)) else value
    return state, meta


def read_state_dict(path: Path, key: tuple[str | int, ...] = KEY) -> dict[str, Any]:
    """A state dict from a ``.safetensors`` file or a tensors-only ``torch.save`` file (``weights_only``:
    a pickle that would run code is refused). A training checkpoint's ``{"model": ...}`` is unwrapped."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling raises many kinds; all mean "not a weights file"
        raise RecipeRuntimeError(key, f"{path}: not a readable weights file ({type(error).__name__}: {error})") from error
    for wrapper in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise RecipeRuntimeError(key, f"{path}: holds a {type(state).__name__}, not a state dict")
    return state


def weights_run_check(recipe: Any, base_dir: Path) -> Iterator[Problem]:
    """A ``Modality.run_checks`` entry: with ``model.init: pretrained``, ``model.weights`` of ``model.base``
    can be loaded here (torch-free: the cache, a local file, or a reachable download server); no
    ``model.weights`` means the builder's ``DEFAULT``, as torchvision's ``weights="DEFAULT"``."""
    model = recipe.model
    if model.init == "pretrained":
        yield from weights_problems(model.base, model.weights or "DEFAULT", base_dir)
