"""Importing Ultralytics so that it never reaches the network and writes only where it is told.

Ultralytics reads its environment once, at import. Before that first import ftrecipe sets, unless the
user already has:

- ``YOLO_OFFLINE=true``: no settings sync, no hub, no event analytics, no weight or asset downloads
  (its online check answers "offline" without a DNS lookup);
- ``YOLO_CONFIG_DIR``: Ultralytics' settings folder (default ``~/.cache/ftrecipe/ultralytics``, never
  the current directory), holding an ``Arial.ttf`` (copied from matplotlib's DejaVu Sans) because the
  dataset check otherwise fetches the font from GitHub;
- ``YOLO_VERBOSE=false``: its console output is replaced by ftrecipe's progress.
- ``YOLO_AUTOINSTALL=false``: a missing requirement is an error, never a pip install mid-run.

After the import, Ultralytics' analytics and its automatic experiment-tracker integrations (MLflow,
Comet, ClearML, DVC, Ray Tune, TensorBoard, W&B) are switched off for the process, without rewriting
its settings file. Runs also pass ``amp=False`` unless mixed precision is asked for, and a local weights file for the
mixed-precision check (see :func:`no_amp_download`), and ``plots=False``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ftrecipe.plugin import RunFailure

EXTRA = 'pip install "ftrecipe[yolo]"'
INTEGRATIONS = ("sync", "clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
"""Ultralytics' analytics and the experiment trackers it switches on by itself when their packages are
installed (each would log elsewhere, some over the network): off for runs through ftrecipe."""


def config_dir() -> Path:
    return Path(os.environ.get("YOLO_CONFIG_DIR") or Path.home() / ".cache" / "ftrecipe" / "ultralytics")


def prepare_environment() -> None:
    """The settings above, and the font in place; idempotent."""
    folder = config_dir()
    os.environ.setdefault("YOLO_CONFIG_DIR", str(folder))
    os.environ.setdefault("YOLO_OFFLINE", "true")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install a missing requirement mid-run
    font = folder / "Ultralytics" / "Arial.ttf"
    if not font.is_file():
        import matplotlib

        font.parent.mkdir(parents=True, exist_ok=True)
        source = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        temporary = font.with_name(f".{font.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, temporary)
        os.replace(temporary, font)


def ultralytics() -> Any:
    """The ``ultralytics`` package, imported offline; a clear error naming the extra when it is missing."""
    if "ultralytics" not in sys.modules:
        prepare_environment()
    try:
        import ultralytics as package
    except ImportError as error:
        raise RunFailure(f"the yolo modality needs Ultralytics (AGPL-3.0), an optional extra: {EXTRA}") from error
    from ultralytics.utils import LOGGER, SETTINGS

    LOGGER.setLevel("WARNING")
    for key in INTEGRATIONS:  # in memory only: the settings file (perhaps the user's own) is not rewritten
        dict.__setitem__(SETTINGS, key, False)
    return package


@contextlib.contextmanager
def no_amp_download() -> Iterator[None]:
    """Ultralytics checks fp16 autocast on CUDA by loading ``yolo26n.pt``, downloading it when absent (offline
    this was reported to hang for half an hour). Without that file the check is skipped and AMP kept on,
    which is what ``hardware.precision: fp16-mixed`` asked for."""
    from ultralytics.engine import trainer as trainer_module
    from ultralytics.utils import WEIGHTS_DIR

    original = trainer_module.check_amp
    if (Path(WEIGHTS_DIR) / "yolo26n.pt").is_file():
        yield
        return
    trainer_module.check_amp = lambda model: True
    try:
        yield
    finally:
        trainer_module.check_amp = original
