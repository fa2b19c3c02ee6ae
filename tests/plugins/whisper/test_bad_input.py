"""Bad input through `ftrecipe run` for each Whisper data format: exit 2 at the recipe key's line and
column, with the data file and line where there is one; never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import run_cli

MODEL = ("model:\n  modality: whisper\n  base: openai/whisper-tiny\n  init: scratch\n"
         "  config: {d_model: 32, ffn_dim: 64, chunk_length: 2}\n")
TAIL = "training:\n  max_steps: 1\nhardware:\n  accelerator: cpu\n"


def clip(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.2 * np.sin(2 * np.pi * 300 * np.arange(int(seconds * 16000)) / 16000), 16000)


def located(recipe: Path, needle: str, column_of: str) -> str:
    for number, line in enumerate(recipe.read_text().splitlines(), 1):
        if needle in line:
            return f"{recipe}:{number}:{line.index(column_of) + 1}"
    raise AssertionError(needle)


def run(tmp_path: Path, data: str):
    recipe = tmp_path / "w.yaml"
    recipe.write_text(MODEL + "data:\n" + data + TAIL)
    return recipe, run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--quiet")


def test_a_bad_line_of_a_json_lines_manifest(tmp_path):
    clip(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "one"}\n{"audio": "a.wav", "text": \n')
    recipe, result = run(tmp_path, "  format: manifest\n  train: m.jsonl\n")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{located(recipe, 'train:', 'm.jsonl')}: data.train: {tmp_path / 'm.jsonl'}:2: invalid JSON")


def test_a_json_lines_manifest_with_a_missing_clip_fails_when_asked(tmp_path):
    clip(tmp_path / "a.wav", 0.5)
    (tmp_path / "m.jsonl").write_text('{"audio": "a.wav", "text": "one"}\n{"audio": "gone.wav", "text": "two"}\n')
    recipe, result = run(tmp_path, "  format: manifest\n  train: m.jsonl\n  on_error: fail\n")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{located(recipe, 'train:', 'm.jsonl')}: data.train: ")
    assert str(tmp_path / "gone.wav") in result.stderr and "Traceback" not in result.stderr


def test_an_audio_folder_without_metadata(tmp_path):
    clip(tmp_path / "clips" / "a.wav", 0.5)
    recipe, result = run(tmp_path, "  format: audiofolder\n  train: clips\n")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{located(recipe, 'train:', 'clips')}: data.train: {tmp_path / 'clips'}: no metadata.csv or metadata.jsonl")


@pytest.mark.e2e
def test_an_audio_folder_runs_through_the_cli(tmp_path):
    for i in range(6):
        clip(tmp_path / "clips" / f"c{i}.wav", 0.4 + 0.1 * i)
    (tmp_path / "clips" / "metadata.csv").write_text("file_name,transcription\n" + "".join(f"c{i}.wav,word {i}\n" for i in range(6)))
    recipe, result = run(tmp_path, "  format: audiofolder\n  train: clips\n  eval_fraction: 0.34\n")
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads((tmp_path / "run" / "summary.json").read_text())["data"]
    assert (data["train_examples"], data["eval_examples"], data["skipped"]) == (4, 2, 0)


def test_a_missing_manifest(tmp_path):
    recipe, result = run(tmp_path, "  format: manifest\n  train: absent.csv\n")
    assert result.returncode == 2
    assert result.stderr.startswith(f"{located(recipe, 'train:', 'absent')}: data.train: no such file or directory: {tmp_path / 'absent.csv'}")


@pytest.mark.parametrize("on_error", ["skip", "fail"])
def test_a_clip_longer_than_the_model_window(tmp_path, on_error):
    """The tiny model's window is 2 s (chunk_length): a 3 s clip would be cut silently by the feature extractor.
    Fatal through the CLI; skipped in the data report that summary.json carries (read in-process: no training
    is needed to see it, and test_runs' bad-clips run shows the report reaching summary.json)."""
    for i in range(4):
        clip(tmp_path / f"ok{i}.wav", 0.5)
    clip(tmp_path / "long.wav", 3.0)
    (tmp_path / "m.csv").write_text("audio,text\n" + "".join(f"ok{i}.wav,word\n" for i in range(4)) + "long.wav,long\n")
    data = f"  format: manifest\n  train: m.csv\n  eval: m.csv\n  on_error: {on_error}\n"
    if on_error == "fail":
        recipe, result = run(tmp_path, data)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"{recipe}:") and "data.max_seconds: " in result.stderr
        assert f"{tmp_path / 'long.wav'}: 3.00 s is longer than the model's 2 s window" in result.stderr
    else:
        from ftrecipe.plugin import TaskContext
        from ftrecipe.registry import get_registry
        from ftrecipe.validation import validate_file
        from ftrecipe_whisper.task import WhisperTask

        recipe = tmp_path / "w.yaml"
        recipe.write_text(MODEL + "data:\n" + data + TAIL)
        validated = validate_file(recipe)
        assert validated.ok, validated.diagnostics
        task = WhisperTask(TaskContext(recipe=validated.recipe, registry=get_registry(), base_dir=validated.base_dir,
                                       output_dir=tmp_path / "run", log=lambda message: None))
        report = task.build_data().report.as_dict()
        assert report["train_examples"] == 4 and report["skipped_examples"] == {
            str(tmp_path / "long.wav"): "too long: 3.00 s > 2 s model window"}
