"""Bad input through `ftrecipe run`, one case per data format of the text plugin: exit 2, the recipe key
at its line and column, and the data file's own line where there is one; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

LM = ("model:\n  modality: causal-lm\n  base: llama\n  init: scratch\n"
      "  config: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2}\n")
CLS = ("model:\n  modality: text-classification\n  base: bert\n  init: scratch\n"
       "  config: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2}\n"
       "head:\n  mode: replace\n  labels: [neg, pos]\n")
TAIL = "training:\n  max_steps: 1\nhardware:\n  accelerator: cpu\n"


def position(recipe: Path, needle: str, column_of: str) -> str:
    """``line:col`` of the first recipe line containing ``needle``, at the column where ``column_of`` starts."""
    for number, line in enumerate(recipe.read_text().splitlines(), 1):
        if needle in line:
            return f"{number}:{line.index(column_of) + 1}"
    raise AssertionError(f"{needle!r} not in the recipe")


def csv_rows(tmp: Path, name: str, text: str) -> None:
    (tmp / name).write_text(text)


CASES = {
    # name: (model part, data part, files to write {name: text or bytes}, (needle, column_of, key), message)
    "csv-null-cell": (LM, "  format: csv\n  train: t.csv\n  columns: {prompt: q, completion: a}\n  on_error: fail\n",
                      {"t.csv": "q,a\nhi,there\nwhat?\n"}, ("columns:", "{prompt", "data.columns"),
                      "{tmp}/t.csv:3: column 'completion' (mapped to 'a') is null"),
    "tsv-null-cell": (LM, "  format: csv\n  train: t.tsv\n  columns: {prompt: q, completion: a}\n  on_error: fail\n",
                      {"t.tsv": "q\ta\nhi\tthere\nok\tfine\nwhat?\n"}, ("columns:", "{prompt", "data.columns"),
                      "{tmp}/t.tsv:4: column 'completion' (mapped to 'a') is null"),
    "jsonl-bad-line": (LM, "  format: jsonl\n  train: t.jsonl\n  on_error: fail\n",
                       {"t.jsonl": '{"prompt": "a", "completion": "b"}\n{oops\n'}, ("train:", "t.jsonl", "data.train"),
                       "{tmp}/t.jsonl:2: corrupt record: invalid JSON"),
    "parquet-corrupt": (LM, "  format: parquet\n  train: t.parquet\n", {"t.parquet": b"PAR1 not really parquet"},
                        ("train:", "t.parquet", "data.train"), "{tmp}/t.parquet: not a readable Parquet file"),
    "missing-file": (LM, "  format: jsonl\n  train: nope.jsonl\n", {}, ("train:", "nope", "data.train"),
                     "no such file or directory: {tmp}/nope.jsonl"),
    "missing-one-of-several": (LM, "  format: jsonl\n  train:\n    - a.jsonl\n    - b.jsonl\n",
                               {"a.jsonl": '{"prompt": "a", "completion": "b"}\n'}, ("- b.jsonl", "b.jsonl", "data.train[1]"),
                               "no such file or directory: {tmp}/b.jsonl"),
    "hf-absent": (LM, "  format: hf\n  train: no-such-dataset\n", {}, ("train:", "no-such", "data.train"),
                  "cannot load dataset no-such-dataset"),
    "sql-eval-absent": (LM, "  format: sql-eval\n  root: no-such-folder\n", {}, ("root:", "no-such", "data.root"),
                        "no such file or directory: {tmp}/no-such-folder"),  # found before torch is imported
    "sql-eval-no-schema": (LM, "  format: sql-eval\n  root: sql\n",
                           {"sql/questions_gen_postgres.csv": "question,query,db_name,query_category,instructions\nHow many?,SELECT 1,shop,x,\n"},
                           ("root:", "sql", "data.root"), "no table schema for database 'shop': {tmp}/sql/metadata/shop.json is missing"),
    "label-unknown": (CLS, "  format: jsonl\n  train: c.jsonl\n  on_error: fail\n",
                      {"c.jsonl": '{"text": "good", "label": "pos"}\n{"text": "bad", "label": "neg"}\n{"text": "meh", "label": "meh"}\n'},
                      ("labels:", "[neg", "head.labels"), "{tmp}/c.jsonl:3: unknown label 'meh' (labels: neg, pos)"),
    "text-missing": (CLS, "  format: csv\n  train: c.csv\n  on_error: fail\n", {"c.csv": "text,label\ngood,pos\n,neg\n"},
                     ("data:", "data", "data.columns"), "{tmp}/c.csv:3: no text in column 'text'"),  # data.columns unwritten: at data
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_data_is_a_located_exit_2(tmp_path, case):
    model, data, files, (needle, column_of, key), message = CASES[case]
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(model + "data:\n" + data + TAIL)
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{recipe}:{position(recipe, needle, column_of)}: {key}: "), result.stderr
    assert message.format(tmp=tmp_path) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_split_that_is_not_in_the_dataset(tmp_path):
    import datasets

    rows = {"prompt": ["a", "b"], "completion": ["c", "d"]}
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "ds"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(LM + "data:\n  format: hf\n  train: ds\n  eval_split: validation\n" + TAIL)
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{recipe}:9:15: data.eval_split: no split 'validation' (splits: train)"), result.stderr


def test_skipped_rows_are_named_by_file_and_line(tmp_path):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(12))
                                      + '{"prompt": "no answer"}\n')
    recipe = tmp_path / "r.yaml"
    recipe.write_text(LM + "data:\n  format: jsonl\n  train: t.jsonl\n  packing: false\n" + TAIL +
                      "evaluation:\n  max_examples: 1\n  generation: {max_new_tokens: 2}\n")
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--quiet")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "run" / "summary.json").read_text())["data"]
    assert data["skipped"] == 1
    assert data["skipped_examples"] == {f"{tmp_path / 't.jsonl'}:13": "column 'completion' is missing; available columns: 'prompt'"}
