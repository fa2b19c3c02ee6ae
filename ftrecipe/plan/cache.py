"""What `ftrecipe plan` remembers between runs: measured footprints and the task's data answers, on disk.

Planning a recipe costs the imports of torch and the modality's libraries, a meta build and two
traced forwards; someone who plans fifty times a day changes a batch size or a learning rate far more
often than the model. Each answer is stored under a key made of everything it depends on:

- the part of the resolved recipe it reads (the model structure for a footprint, the whole recipe for
  the data and speed answers);
- the versions of the libraries that build the model and of ftrecipe and the modality's plugin (for an
  editable install, the content of every source file, so a code change is never answered from an old
  measurement);
- every local file or folder the recipe names (the content of each file under it, or its size and time
  past :data:`CONTENT_BYTES`) and the Hugging Face cache entry of every hub id it names, so new data or
  a downloaded config plans afresh.

Files are stamped by content where that is cheap, so a fresh checkout of the same commit (a CI job with
the cache restored) finds the entries an earlier job wrote.

A recipe naming a folder too large to stamp quickly is planned without the cache. Entries are JSON,
written atomically; ``FTRECIPE_CACHE_DIR`` moves the cache, ``ftrecipe plan --no-cache`` bypasses it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

CACHE_ENV = "FTRECIPE_CACHE_DIR"
FORMAT = 1
"""Bumped when what an entry holds changes shape."""
LIBRARIES = ("torch", "transformers", "peft", "diffusers", "ultralytics", "accelerate", "bitsandbytes", "tokenizers",
             "huggingface-hub", "liger-kernel", "torchvision", "ftrecipe")
MAX_STAMPED_FILES = 20_000
"""Beyond this many files under the recipe's paths, stamping costs more than it saves: no cache."""
CONTENT_BYTES = 64 << 20
"""The recipe's files are stamped by their content until this many bytes are read, then by size and time."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

T = TypeVar("T")


def cache_root() -> Path:
    """``$FTRECIPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ftrecipe``, else ``~/.cache/ftrecipe``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ftrecipe"


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloads (its own lookup order, without importing it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home) / "hub"


class TooLarge(Exception):
    """A path holds more files than is worth stamping."""


class _Budget:
    """What stamping may still cost: files to list, bytes to read."""

    def __init__(self) -> None:
        self.files, self.bytes = MAX_STAMPED_FILES, CONTENT_BYTES


def content_digest(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "blake2b").hexdigest()[:32]


def _file_stamp(path: str, info: os.stat_result, budget: _Budget) -> list[Any]:
    """A file by its content while the byte budget lasts, else by size and modification time."""
    if info.st_size <= budget.bytes:
        budget.bytes -= info.st_size
        return [path, info.st_size, content_digest(path)]
    return [path, info.st_size, info.st_mtime_ns]


def _walk(folder: Path, budget: _Budget) -> Iterator[list[Any]]:
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            budget.files -= 1
            if budget.files < 0:
                raise TooLarge(str(folder))
            if entry.is_dir(follow_symlinks=True):
                yield from _walk(Path(entry.path), budget)
            else:
                yield _file_stamp(entry.path, entry.stat(), budget)


def path_stamp(path: Path, budget: _Budget) -> list[Any]:
    """Stamps of ``path`` and of every file under it (a file's own folder too: a manifest names the
    files beside it)."""
    if path.is_file():
        return [_file_stamp(str(path), path.stat(), budget), list(_walk(path.parent, budget))]
    return list(_walk(path, budget))


def package_stamp(package: str) -> list[Any]:
    """``package``'s source files by content (an installed copy and an editable checkout alike)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return [package, None]
    files = []
    for folder in spec.submodule_search_locations:
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(names):
                if name.endswith((".py", ".json", ".yaml")):
                    path = os.path.join(root, name)
                    files.append([os.path.relpath(path, folder), content_digest(path)])
    return [package, files]


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def named_inputs(recipe_data: dict[str, Any], base_dir: Path) -> Iterator[tuple[str, list[Path]]]:
    """Every string of the recipe's ``model`` and ``data`` sections, with the paths on this machine it
    names (none for a hub id or a plain word). A relative path may be the recipe's (data) or the working
    directory's (``from_pretrained`` of a model): both are given where both exist."""
    for value in sorted(set(_strings({k: recipe_data.get(k) for k in ("model", "data")}))):
        if not value or len(value) > 4096 or "\n" in value:
            continue
        path = Path(value).expanduser()
        yield value, [p for p in ([path] if path.is_absolute() else [base_dir / path, Path.cwd() / path]) if p.exists()]


def inputs_stamp(recipe_data: dict[str, Any], base_dir: Path) -> list[Any]:
    """Stamps of what the recipe's ``model`` and ``data`` sections name on this machine: local paths,
    and the hub cache entries of hub ids (absent ones too: a download later changes the stamp)."""
    stamps: list[Any] = []
    budget = _Budget()
    hub = hub_cache()
    for value, found in named_inputs(recipe_data, base_dir):
        if found:
            stamps.append([value, [[str(p.resolve()), path_stamp(p, budget)] for p in found]])
        elif _HUB_ID.match(value):
            for kind in ("models", "datasets"):
                refs = hub / f"{kind}--{value.replace('/', '--')}" / "refs"
                stamps.append([value, kind, list(_walk(refs, budget)) if refs.is_dir() else None])
    return stamps


class PlanCache:
    """Answers of one recipe's plan, looked up by what they depend on (see the module docstring)."""

    def __init__(self, recipe_data: dict[str, Any], base_dir: Path, plugin_package: str, *, extra: Any = None,
                 enabled: bool = True, root: Path | None = None) -> None:
        self.root = (root or cache_root()) / "plan"
        self.enabled = enabled
        self.common: str | None = None
        if not enabled:
            return
        try:
            inputs = inputs_stamp(recipe_data, base_dir)
        except (TooLarge, OSError):
            self.enabled = False
            return
        common = [FORMAT, library_versions(), package_stamp("ftrecipe"), package_stamp(plugin_package), inputs, extra]
        self.common = json.dumps(common, sort_keys=True, default=str)

    def key(self, kind: str, depends_on: Any) -> str:
        text = json.dumps([kind, depends_on], sort_keys=True, default=str) + (self.common or "")
        return hashlib.sha256(text.encode()).hexdigest()

    def remembered(self, kind: str, depends_on: Any, compute: Callable[[], T], *, dump: Callable[[T], Any],
                   load: Callable[[Any], T]) -> T:
        """The stored answer for ``(kind, depends_on)``, else ``compute()``'s, stored. An exception
        from ``compute`` (a located mistake) is never stored."""
        if not self.enabled:
            return compute()
        path = self.root / kind / f"{self.key(kind, depends_on)}.json"
        try:
            return load(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            pass  # absent, or written by another version: measure afresh
        value = compute()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as handle:
                json.dump(dump(value), handle)
            os.replace(handle.name, path)
        except OSError:
            pass  # a read-only home: plan without remembering
        return value


def as_json(value: Any) -> Any:
    """A dataclass (nested ones too) as JSON data."""
    return asdict(value)
