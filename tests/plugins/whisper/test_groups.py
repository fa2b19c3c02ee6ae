"""WER and CER per group (data.group_by) before and after training, and a bad group_by column: the
arithmetic on hand-made transcripts, the rest in-process, without training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ftrecipe_whisper.groups import GROUPS_FILE, NO_VALUE, GroupTracker, compare, describe, group_table

# speaker a: 1 edit in 5 reference words (a mean of per-clip rates would say 0.5); b: 2 of 2; "" -> (none)
ROWS = [
    {"groups": {"speaker": "a", "accent": "x"}, "duration": 1800.0},
    {"groups": {"speaker": "a", "accent": "y"}, "duration": 1800.0},
    {"groups": {"speaker": "b", "accent": "x"}, "duration": 360.0},
    {"groups": {"speaker": "", "accent": "y"}, "duration": 36.0},
]
REFERENCES = ["one two three four", "five", "six seven", "eight"]
AFTER = ["one two three four", "nine", "six", "eight"]
BEFORE = ["one two three four", "five", "six seven", "eight nine"]


def test_corpus_rates_clips_and_hours_per_group():
    table = group_table(ROWS, REFERENCES, AFTER, ["speaker", "accent"])
    speaker = table["speaker"]
    assert list(speaker) == [NO_VALUE, "a", "b"]  # an empty value is a group of its own
    assert speaker["a"]["clips"] == 2 and speaker["a"]["hours"] == pytest.approx(1.0)
    assert speaker["a"]["wer"] == pytest.approx(1 / 5)  # edits summed over words summed, not mean(0, 1)
    assert speaker["a"]["cer"] == pytest.approx(2 / (len("one two three four") + len("five")))  # five -> nine
    assert speaker["b"]["wer"] == pytest.approx(1 / 2) and speaker["b"]["hours"] == pytest.approx(0.1)
    assert speaker[NO_VALUE]["wer"] == 0.0 and speaker[NO_VALUE]["clips"] == 1
    assert table["accent"]["x"]["clips"] == 2 and table["accent"]["x"]["wer"] == pytest.approx(1 / 6)
    # one group holding every clip is the run's corpus WER
    import jiwer

    whole = group_table([{"groups": {}, "duration": 1.0}] * 4, REFERENCES, AFTER, ["speaker"])["speaker"][NO_VALUE]
    assert whole["wer"] == pytest.approx(jiwer.wer(REFERENCES, AFTER))


def test_worst_group_largest_regression_and_flags():
    before = group_table(ROWS, REFERENCES, BEFORE, ["speaker"])
    after = group_table(ROWS, REFERENCES, AFTER, ["speaker"])
    result = compare(before, after)["speaker"]
    a, b, none = result["groups"]["a"], result["groups"]["b"], result["groups"][NO_VALUE]
    assert (a["wer_before"], a["wer_after"], a["wer_delta"]) == (0.0, 0.2, 0.2)
    assert (b["wer_before"], b["wer_after"], b["wer_delta"]) == (0.0, 0.5, 0.5)
    assert none["wer_before"] == 1.0 and none["wer_delta"] == -1.0  # "eight nine" -> "eight": improved
    assert a["cer_delta"] > 0 and a["clips"] == 2 and a["hours"] == 1.0
    assert result["worst"] == "b" and result["largest_regression"] == "b" and result["regressed"] == ["b", "a"]
    info, warnings = describe({"speaker": result})
    assert info == ["eval by speaker: 3 group(s); worst 'b': WER 0.000 -> 0.500 (1 clips, 0.100 h); "
                    "largest regression 'b': WER +0.500"]
    assert [w.split(":")[0] for w in warnings] == ["speaker 'b' got worse", "speaker 'a' got worse"]
    assert compare(after, before)["speaker"]["largest_regression"] == NO_VALUE
    only_after = compare(None, after)["speaker"]
    assert only_after["groups"]["a"]["wer_before"] is None and only_after["regressed"] == [] and only_after["worst"] == "b"


def test_the_tracker_compares_every_later_evaluation_with_the_one_before_training_and_resumes(tmp_path):
    lines: dict[str, list[str]] = {"log": [], "warn": []}

    def tracker() -> GroupTracker:
        return GroupTracker(tmp_path, write=True, log=lines["log"].append, warn=lines["warn"].append)

    first = tracker()
    assert first.record(group_table(ROWS, REFERENCES, BEFORE, ["speaker"]), before=True) is None  # the base model's
    assert lines["warn"] == [] and lines["log"][0].endswith("(before training)")
    result = first.record(group_table(ROWS, REFERENCES, AFTER, ["speaker"]), before=False)
    assert result["speaker"]["regressed"] == ["b", "a"] and len(lines["warn"]) == 2
    saved = json.loads((tmp_path / GROUPS_FILE).read_text())
    assert saved["groups"] == result and saved["before"]["speaker"]["b"]["wer"] == 0.0 and saved["after"]["speaker"]["b"]["wer"] == 0.5
    resumed = tracker()  # --resume: no evaluation before training here; the before table comes from the file
    assert resumed.record(group_table(ROWS, REFERENCES, AFTER, ["speaker"]), before=False) == result
    unmeasured = GroupTracker(tmp_path / "new", write=True, log=lines["log"].append, warn=lines["warn"].append)
    alone = unmeasured.record(group_table(ROWS, REFERENCES, AFTER, ["speaker"]), before=False)  # before_training off
    assert alone["speaker"]["groups"]["b"]["wer_before"] is None and alone["speaker"]["regressed"] == []


def clip(path: Path, seconds: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.2 * np.sin(2 * np.pi * 300 * np.arange(int(seconds * 16000)) / 16000), 16000)


def test_an_unknown_group_by_column_is_located(tmp_path):
    """Found where the manifest is read, before any model: at data.group_by's line and column (the CLI prints
    this diagnostic and exits 2 for every such error, as tests/core checks)."""
    from ftrecipe.plugin import RecipeRuntimeError
    from ftrecipe.validation import validate_file
    from ftrecipe_whisper.readers import read_manifest_format

    clip(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("audio,text,speaker\na.wav,one,ann\na.wav,two,bob\n")
    recipe = tmp_path / "w.yaml"
    recipe.write_text("model:\n  modality: whisper\n  base: openai/whisper-tiny\n"
                      "data:\n  format: manifest\n  train: m.csv\n  group_by: [speaker, accent]\n")
    result = validate_file(recipe)
    assert result.ok, result.diagnostics
    with pytest.raises(RecipeRuntimeError) as caught:
        read_manifest_format(result.recipe.data, base_dir=tmp_path, seed=0, smoke=False)
    located = result.diagnostic(caught.value.path, caught.value.message).text()
    assert located == (f"{recipe}:7:13: data.group_by: {tmp_path / 'm.csv'}: no column 'accent' to group by; "
                       "has ['audio', 'speaker', 'text']")
    # a canonical name follows data.columns: "speaker" is the file's client_id
    (tmp_path / "m.csv").write_text("audio,text,client_id\na.wav,one,ann\na.wav,two,\n")
    recipe.write_text(recipe.read_text().replace("[speaker, accent]", "speaker\n  eval: m.csv"))
    splits = read_manifest_format(validate_file(recipe).recipe.data, base_dir=tmp_path, seed=0, smoke=False)
    assert [row["groups"] for row in splits.train] == [{"speaker": "ann"}, {"speaker": ""}]


def test_group_by_names_columns():
    from ftrecipe.validation import validate_text

    for bad, message in (("[]", "name one or more"), ("[speaker, speaker]", "named twice")):
        text = (f"model:\n  modality: whisper\n  base: openai/whisper-tiny\n"
                f"data:\n  format: manifest\n  train: m.csv\n  group_by: {bad}\n")
        found = validate_text(text, source="w.yaml")
        assert not found.ok and any(message in str(d) and "data.group_by" in str(d) for d in found.diagnostics), found.diagnostics
