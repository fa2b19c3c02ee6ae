"""Data-side modules stay light: importing them must not pull in torch or transformers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"


def test_data_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import ftrecipe_whisper.audio, ftrecipe_whisper.augment, ftrecipe_whisper.manifest\n"
        "import ftrecipe_whisper.normalize, ftrecipe_whisper.synthetic, ftrecipe_whisper.fsdd, ftrecipe_whisper.groups\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'evaluate', 'datasets') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == ""
