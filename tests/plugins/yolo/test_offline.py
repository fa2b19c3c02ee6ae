"""What ftrecipe sets before and after importing Ultralytics (the run-level proof is in test_runs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_the_environment_and_the_settings_ftrecipe_gives_ultralytics(tmp_path: Path):
    """In a fresh process without any YOLO_ variable: offline, quiet, a private settings folder holding the font,
    trackers and analytics off in memory while the settings file keeps Ultralytics' own defaults."""
    script = (
        "import json, os\n"
        "from ftrecipe_yolo.offline import ultralytics\n"
        "ultralytics()\n"
        "from ultralytics.utils import SETTINGS, ONLINE\n"
        "print(json.dumps({'env': {k: v for k, v in os.environ.items() if k.startswith('YOLO_')}, 'online': ONLINE,\n"
        "                  'settings': {k: SETTINGS[k] for k in ('sync', 'mlflow', 'comet', 'clearml', 'dvc')},\n"
        "                  'file': str(SETTINGS.file)}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_")}
    env["HOME"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    folder = tmp_path / ".cache" / "ftrecipe" / "ultralytics"
    assert seen["env"] == {"YOLO_CONFIG_DIR": str(folder), "YOLO_OFFLINE": "true", "YOLO_VERBOSE": "false",
                           "YOLO_AUTOINSTALL": "false"}
    assert seen["online"] is False and not any(seen["settings"].values())
    assert (folder / "Ultralytics" / "Arial.ttf").stat().st_size > 100_000
    stored = json.loads(Path(seen["file"]).read_text())
    assert stored["mlflow"] is True and stored["sync"] is True  # the file is Ultralytics' business


def test_a_user_s_own_settings_are_respected(tmp_path: Path):
    script = "from ftrecipe_yolo.offline import ultralytics\nultralytics()\nimport os\nprint(os.environ['YOLO_CONFIG_DIR'], os.environ['YOLO_OFFLINE'])\n"
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "mine"), "YOLO_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(tmp_path / "mine"), "1"]
    assert (tmp_path / "mine" / "Ultralytics" / "Arial.ttf").is_file()
