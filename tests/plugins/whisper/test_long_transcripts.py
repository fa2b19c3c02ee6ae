"""Transcripts longer than the decoder takes (``max_target_positions``: 448 for Whisper, 12 here) are left
out when the data is read, per file in the data report, or stop the run naming the file: never a failed
forward pass mid-run. In-process on a tiny checkpoint, without training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ftrecipe.plugin import RecipeRuntimeError, TaskContext
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_file
from ftrecipe_whisper.synthetic import VOCABULARY
from ftrecipe_whisper.task import WhisperTask

LIMIT = 12
"""The tiny decoder's max_target_positions: 4 prefix tokens + 8 words + the end token fit exactly."""


@pytest.fixture(scope="module")
def short_decoder(tmp_path_factory) -> Path:
    from ftrecipe_whisper.tiny import build_tiny_whisper

    return build_tiny_whisper(list(VOCABULARY) * 3, tmp_path_factory.mktemp("whisper"), chunk_length=2, d_model=32,
                              ffn_dim=64, max_target_positions=LIMIT)


def task_for(tmp: Path, base: Path, on_error: str) -> WhisperTask:
    for name in ("a", "b", "c", "edge", "long"):
        sf.write(tmp / f"{name}.wav", 0.2 * np.sin(2 * np.pi * 300 * np.arange(4000) / 16000), 16000)
    words = " ".join(VOCABULARY[:9])  # each word one token of the tiny tokenizer
    (tmp / "m.csv").write_text("audio,text\na.wav,one two\nb.wav,yes\nc.wav,hello agent\n"
                               f"edge.wav,{words.rsplit(' ', 1)[0]}\nlong.wav,{words}\n")
    recipe = tmp / "w.yaml"
    recipe.write_text(f"model:\n  modality: whisper\n  base: {base}\n"
                      f"data:\n  format: manifest\n  train: m.csv\n  eval: m.csv\n  on_error: {on_error}\n"
                      "training:\n  max_steps: 1\nhardware:\n  accelerator: cpu\n")
    result = validate_file(recipe)
    assert result.ok, result.diagnostics
    return WhisperTask(TaskContext(recipe=result.recipe, registry=get_registry(), base_dir=result.base_dir,
                                   output_dir=tmp / "run", log=lambda message: None))


def test_long_transcripts_are_skipped_per_file_and_the_rest_trains(tmp_path, short_decoder):
    task = task_for(tmp_path, short_decoder, "skip")
    data = task.build_data()
    long = str(tmp_path / "long.wav")
    assert data.report.skipped == {long: f"transcript too long: 13 tokens > {LIMIT} the decoder takes"}
    assert data.report.details["transcripts_too_long"] == 2  # once in train, once in eval
    assert (data.report.train_examples, data.report.eval_examples) == (4, 4)
    model = task.build_model()
    batch = data.collate([data.train[i] for i in range(len(data.train))])
    assert batch["labels"].shape[1] == LIMIT  # the edge clip: exactly what the decoder takes
    assert torch.isfinite(task.compute_loss(model, batch))
    # what training met before: the long clip's labels fail the forward pass
    from ftrecipe_whisper.task import SpeechDataset

    unfiltered = SpeechDataset([{"audio": long, "sample_rate": 16000, "text": " ".join(VOCABULARY[:9])}],
                               task.processor, 16000, None, 0)
    with pytest.raises(ValueError, match="cannot exceed the maximum allowed length"):
        task.compute_loss(model, data.collate([unfiltered[0]]))


def test_a_long_transcript_stops_the_run_naming_the_file(tmp_path, short_decoder):
    with pytest.raises(RecipeRuntimeError) as caught:
        task_for(tmp_path, short_decoder, "fail").build_data()
    assert caught.value.path == ("data", "train")
    assert caught.value.message.startswith(f"{tmp_path / 'long.wav'}: transcript too long: 13 tokens > {LIMIT}")
