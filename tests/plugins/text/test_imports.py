"""The data-side modules stay pure Python: importing them must not pull in torch or
transformers (the core imports plugins to validate recipes without the ML stack)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"

PURE = ["records", "formatting", "synthetic", "sql_eval"]
LAZY = ["tokenization", "packing", "tiny", "metrics"]  # torch/transformers only inside functions


@pytest.mark.parametrize("module", PURE + LAZY)
def test_import_does_not_load_torch(module: str) -> None:
    code = (
        f"import sys, ftrecipe_text.{module}\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets', 'evaluate') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
