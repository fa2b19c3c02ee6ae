"""Every mistake in a YOLO recipe or its data: a located message and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

BASE = """\
model: {{modality: yolo, base: {base}, init: {init}, image_size: 64}}
head: {{mode: replace{labels}}}
data: {{format: yolo, yaml: {data}, on_error: {on_error}}}
training: {{max_steps: 1, batch_size: 2}}
hardware: {{accelerator: cpu}}
{extra}"""


def write(tmp_path: Path, *, base: str = "yolo11n.yaml", data: str = "set/data.yaml", labels: str = "",
          on_error: str = "skip", extra: str = "") -> Path:
    init = "scratch" if base.endswith(".yaml") else "pretrained"
    text = BASE.format(base=base, init=init, data=data, labels=labels, on_error=on_error, extra=extra)
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def located(result, path: Path, key: str) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if f": {key}:" in line]
    assert lines and lines[0].startswith(f"{path}:"), result.stdout + result.stderr
    return lines[0]


GOOD = "0 0.5 0.5 0.25 0.25\n"


@pytest.mark.parametrize(
    ("recipe_kw", "key", "message"),
    [
        ({"base": "missing-weights.pt"}, "model.base", "is not a local file"),
        ({"labels": ", labels: [cat, horse]"}, "head.labels", "not classes of the dataset: horse"),
        ({"on_error": "fail", "data": "bad/data.yaml"}, "data.yaml", "class id 9 is outside the 2 class names"),
        ({"data": "nowhere.yaml"}, "data.yaml", "no such file or directory"),  # found before torch is imported
    ],
    ids=["weights-missing", "unknown-label", "bad-label-fail", "yaml-missing"],
)
def test_run_time_mistakes_are_located(tmp_path: Path, detection_folder, recipe_kw: dict, key: str, message: str):
    data = detection_folder({"a.png": GOOD, "b.png": GOOD, "c.png": GOOD}, val={"d.png": GOOD})
    bad = tmp_path / "bad"
    bad.mkdir()
    import shutil

    shutil.copytree(data.parent, bad, dirs_exist_ok=True)
    (bad / "labels" / "train" / "b.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    path = write(tmp_path, **recipe_kw)
    line = located(run_cli("run", str(path), "--output", str(tmp_path / "run"), "--quiet"), path, key)
    assert message in line


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("freeze: {strategy: lora}\n", "freeze.strategy", "'lora' is not allowed; allowed: full, transfer, partial"),
        ("training: {optimizer: adafactor}\n", "training.optimizer", "allowed: adamw, sgd"),
        ("hardware: {devices: 2}\n", "hardware.devices", "1"),
        ("training: {gradient_accumulation: 4}\n", "training.gradient_accumulation", "training.nominal_batch"),
        ("evaluation: {metrics: [wer]}\n", "evaluation.metrics", "mAP50"),
    ],
    ids=["lora", "optimizer", "devices", "accumulation", "metrics"],
)
def test_what_ultralytics_cannot_do_is_refused_by_validate(tmp_path: Path, extra: str, key: str, message: str):
    text = f"model: {{modality: yolo, base: yolo11n.pt}}\ndata: {{format: synthetic}}\n{extra}"
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    line = located(run_cli("validate", str(path)), path, key)
    assert message in line


def test_a_missing_ultralytics_install_names_the_extra_and_validate_still_works(tmp_path: Path):
    """Ultralytics is optional (AGPL-3.0): without it, validate works and run says which extra to install."""
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ultralytics' or name.startswith('ultralytics.'):\n"
        "            raise ImportError('No module named ultralytics')\n"
        "sys.meta_path.insert(0, Block())\n")
    path = tmp_path / "recipe.yaml"
    path.write_text("model: {modality: yolo, base: yolo11n.yaml, init: scratch}\ndata: {format: synthetic}\n"
                    "hardware: {accelerator: cpu}\n")
    env = {"PYTHONPATH": str(blocker)}
    assert run_cli("validate", str(path), env=env).returncode == 0
    result = run_cli("run", str(path), "--output", str(tmp_path / "run"), "--quiet", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert 'the yolo modality needs Ultralytics (AGPL-3.0), an optional extra: pip install "ftrecipe[yolo]"' in result.stderr
