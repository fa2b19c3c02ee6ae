"""Loading a base model from a local directory or the Hugging Face cache, with an error that says what to do.

Transformers' own message for a missing model is a paragraph about connections and repository ids; a
recipe user needs to know where ftrecipe looked and how to get the weights there. Every plugin loads
its pretrained parts through :func:`load_pretrained`, so the advice reads the same everywhere.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ftrecipe.errors import RecipeRuntimeError, RunFailure

T = TypeVar("T")

_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def never_download() -> None:
    """A plan reads configs, tokenizers and datasets from this machine only (local folders, the Hugging
    Face cache): the hub clients are told so before they are imported."""
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[name] = "1"


def looks_like_hub_id(source: str) -> bool:
    """``org/name`` (or ``name``) that is not a path on this machine."""
    return bool(_HUB_ID.match(source)) and not Path(source).expanduser().exists()


def _offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Can this machine open a connection to the Hub at all? (Asked once per process.) Without it,
    loading goes to the cache alone at once instead of retrying each file with back-off for a minute."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def missing_message(source: str, what: str, error: BaseException | None) -> str:
    """Why ``source`` could not be loaded (or, without ``error``, will not be), and how to get it."""
    detail = "" if error is None else str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if not looks_like_hub_id(source):
        if not Path(source).expanduser().exists():
            return f"no {what} at '{source}': no such directory"
        return f"cannot load the {what} from '{source}': {detail}"
    from huggingface_hub import constants

    if _offline():
        reason = "the network is switched off (HF_HUB_OFFLINE)"
    elif not hub_reachable():
        reason = "the Hub cannot be reached from here"
    else:
        reason = f"downloading it failed ({detail})"
    gated = re.search(r"gated|401|403|access", detail, re.IGNORECASE)
    advice = [
        f"'{source}' is not a local directory and not in the Hugging Face cache ({constants.HF_HUB_CACHE}), and {reason}.",
        f"Get it with `hf download {source}` where the Hub is reachable (and copy the cache here), or set this key to a local directory that holds it.",
    ]
    if gated:
        advice.append("The repository is gated: accept its licence on huggingface.co and log in (`hf auth login`) first.")
    advice.append("`ftrecipe run RECIPE --smoke` checks the rest of the recipe without it.")
    return " ".join(advice)


def missing_pretrained(source: str, *, revision: str | None = None, marker: str = "config.json", what: str = "model") -> str | None:
    """Why ``source`` could not be loaded on this machine now, judged without loading anything (a local
    path that exists, ``marker`` of the hub repository in the Hugging Face cache, or a reachable Hub
    pass); None where loading may go ahead."""
    if Path(source).expanduser().exists():
        return None
    if not looks_like_hub_id(source):
        return f"no {what} at '{source}': no such directory"
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, marker, revision=revision), str):
        return None
    if not _offline() and hub_reachable():
        return None
    return missing_message(source, what, None)


def load_pretrained(
    load: Callable[..., T], source: str, *, key: tuple[str | int, ...] = ("model", "base"), what: str = "model", **kwargs: Any
) -> T:
    """``load(source, **kwargs)`` (a ``from_pretrained``); a missing or unreadable ``source`` becomes a
    :class:`~ftrecipe.errors.RecipeRuntimeError` at the recipe key ``key`` (exit 2, located) that says
    how to get it."""
    if looks_like_hub_id(source) and not _offline() and not hub_reachable():
        kwargs.setdefault("local_files_only", True)
    try:
        return load(source, **kwargs)
    except (OSError, ValueError) as error:  # missing files, or a folder that holds something else
        raise RecipeRuntimeError(key, missing_message(source, what, error)) from error


def carried_config(folder: Path, source: str, aliases: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The ``config.json`` a plugin carries for hub id ``source`` in ``folder`` (``org--name.json``,
    matched without case as the Hub matches ids; ``aliases`` maps other ids onto carried ones)."""
    name = (aliases or {}).get(source.lower(), source).replace("/", "--").lower() + ".json"
    for path in folder.glob("*.json"):
        if path.name.lower() == name:
            return json.loads(path.read_text(encoding="utf-8"))
    return None


CODE_CONFIGS = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")
"""The files whose ``auto_map`` names the Python modules a checkpoint brings with it."""


def _cached_file(source: str, name: str, revision: str | None) -> Path | None:
    local = Path(source).expanduser()
    if local.is_dir():
        return local / name if (local / name).is_file() else None
    if not looks_like_hub_id(source):
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source, name, revision=revision)
    return Path(found) if isinstance(found, str) else None


def checkpoint_code(source: str, revision: str | None = None) -> list[str]:
    """The Python files a checkpoint's ``auto_map`` entries would run (``org/repo:module.py`` for code
    in another repository), read from its config files on this machine only; [] when none are here."""
    modules: set[str] = set()
    for name in CODE_CONFIGS:
        path = _cached_file(source, name, revision)
        if path is None:
            continue
        try:
            auto_map = json.loads(path.read_text(encoding="utf-8")).get("auto_map") or {}
        except (OSError, ValueError, AttributeError):
            continue
        for reference in auto_map.values():
            for item in reference if isinstance(reference, list) else [reference]:
                if isinstance(item, str) and "." in item:
                    repo, _, dotted = item.rpartition("--")
                    modules.add(f"{repo + ':' if repo else ''}{dotted.rsplit('.', 1)[0].replace('.', '/')}.py")
    return sorted(modules)


def remote_code_summary(source: str, revision: str | None = None) -> str:
    """One sentence for a run's log or a plan: which of the checkpoint's own files run on this machine."""
    files = checkpoint_code(source, revision)
    if not files:
        return "the checkpoint's own Python code runs on this machine (none of its files is here yet to name)"
    return f"the checkpoint's own Python code runs on this machine: {', '.join(files)} (from {source})"


class RemoteCodeRefused(RunFailure):
    """The base's architecture exists only as the checkpoint's own code, and nobody said it may run."""


def _refused_code(source: str, revision: str | None, trusted: bool) -> RemoteCodeRefused | None:
    """Why a config that failed to load cannot be planned: the checkpoint's own code, not trusted; else None."""
    files = [] if trusted else checkpoint_code(source, revision)
    if not files:
        return None
    return RemoteCodeRefused(
        f"plan unavailable: the architecture of '{source}' is the checkpoint's own Python code ({', '.join(files)}), "
        "which a plan runs only when the command line says so (`--trust-remote-code`; the recipe key alone is not enough)")


def find_config(
    source: str,
    *,
    load: Callable[..., T],
    from_dict: Callable[[dict[str, Any]], T],
    carried: Path,
    aliases: dict[str, str] | None = None,
    key: tuple[str | int, ...] = ("model", "base"),
    **kwargs: Any,
) -> T:
    """A base's config without downloading anything, for `ftrecipe plan`: a local directory's
    ``config.json`` (``load(directory)``), one the plugin carries in ``carried``
    (``from_dict(json)``), or the Hugging Face cache (``load(source, local_files_only=True)``).
    ``kwargs`` go to ``load`` (``revision``, ``trust_remote_code``). None found is a
    :class:`~ftrecipe.errors.RecipeRuntimeError` at ``key`` that says where it looked."""
    local = Path(source).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise RecipeRuntimeError(key, f"'{source}' holds no config.json")
        try:
            return load(str(local), **{k: v for k, v in kwargs.items() if k != "revision"})
        except (OSError, ValueError) as error:
            refused = _refused_code(source, None, bool(kwargs.get("trust_remote_code")))
            raise refused or RecipeRuntimeError(key, f"cannot read the config in '{source}': {error}") from error
    if not looks_like_hub_id(source):
        raise RecipeRuntimeError(key, f"no config for '{source}' here: no such directory")
    found = carried_config(carried, source, aliases)
    if found is not None:
        return from_dict(found)
    try:
        return load(source, local_files_only=True, **kwargs)
    except OSError:
        pass
    except ValueError as error:  # in the cache, but not a config this library reads
        refused = _refused_code(source, kwargs.get("revision"), bool(kwargs.get("trust_remote_code")))
        raise refused or RecipeRuntimeError(key, f"cannot read the config of '{source}': {error}") from error
    from huggingface_hub import constants

    raise RecipeRuntimeError(key, (
        f"no config for '{source}' here: it is not a local directory, not one of the configs the plugin carries "
        f"({carried}), and not in the Hugging Face cache ({constants.HF_HUB_CACHE}). The plan needs only its "
        f"config.json: `hf download {source} config.json` where the Hub is reachable (and copy the cache here), "
        "or set this key to a directory that holds it"))
