"""`--untrusted`: a recipe's paths stay inside the repository, and an untrusted plan shows only counts;
which files a checkpoint's own code would run. (The hostile pull request end to end, through the review
script and the pre-commit hooks: tests/core/test_review_hooks.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ftrecipe.cli import main
from ftrecipe.hub import checkpoint_code, remote_code_summary
from ftrecipe.untrusted import counts_only, leaving_value, marked_values, repository_root
from ftrecipe.validation import validate_text

RECIPE = """\
model:
  modality: causal-lm
  base: {base}
  init: scratch
data:
  format: jsonl
  train: [data/a.jsonl, {train}]
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "recipes" / "data").mkdir(parents=True)
    (root / "recipes" / "data" / "a.jsonl").write_text('{"prompt": "q", "completion": "a"}\n')
    (tmp_path / "secret.jsonl").write_text('{"prompt": "secret", "completion": "secret"}\n')
    monkeypatch.chdir(root)
    return root


def test_every_marked_key_is_found_with_its_position(repo):
    result = validate_text(RECIPE.format(base="llama", train="data/b.jsonl"), source="r.yaml")
    assert result.ok, result.diagnostics
    found = dict(marked_values(result.recipe))
    assert found[("model", "base")] == "llama"
    assert found[("data", "train", 0)] == "data/a.jsonl" and found[("data", "train", 1)] == "data/b.jsonl"


@pytest.mark.parametrize("value, why", [
    ("data/a.jsonl", None),
    ("llama", None),  # a hub id or a family name: resolves inside, and is not a file here
    ("../../secret.jsonl", "resolves outside the repository"),
    ("data/../../../secret.jsonl", "resolves outside the repository"),
    ("/etc/passwd", "is an absolute path"),
    ("~/.ssh/id_rsa", "is an absolute path"),
    ("data/out.jsonl", "is a symbolic link that leaves the repository"),
    ("data/inside.jsonl", None),  # a link that stays in the tree is fine
    ("data", "holds a symbolic link that leaves the repository (out.jsonl)"),
])
def test_paths_that_leave_the_repository_are_refused(repo, value, why):
    data = repo / "recipes" / "data"
    (data / "out.jsonl").symlink_to(repo.parent / "secret.jsonl")
    (data / "inside.jsonl").symlink_to(data / "a.jsonl")
    found = leaving_value(value, repo / "recipes", repository_root(repo / "recipes"))
    assert (found is None) if why is None else (why in found), found


def test_a_base_found_from_the_working_directory_is_checked_from_there_too(repo):
    """A local base is looked up from the working directory: '../x' from the repository root leaves it
    even where the same text from the recipe's folder would not."""
    assert leaving_value("../models/x", repo / "recipes", repo) is not None
    os.chdir(repo / "recipes")
    assert leaving_value("../models/x", repo / "recipes", repo) is None


def test_validate_untrusted_locates_each_refusal_and_exits_2(repo, capsys):
    recipe = repo / "recipes" / "r.yaml"
    recipe.write_text(RECIPE.format(base="/models/llama", train="../../secret.jsonl"))
    assert main(["validate", str(recipe)]) == 0
    capsys.readouterr()
    assert main(["validate", "--untrusted", str(recipe)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{recipe}:3:9: model.base: '/models/llama' is an absolute path")
    assert lines[1].startswith(f"{recipe}:7:25: data.train[1]: '../../secret.jsonl' resolves outside the repository")


def test_an_untrusted_plan_keeps_only_counts_of_the_data():
    data = {"train_examples": 90, "eval_examples": 10, "balance": {"cat": 50, "root:x:0:0": 40},
            "unavailable": None, "amount": {"tokens": 1234.0}}
    shown = counts_only(dict(data), ["cat"])
    assert shown["balance"] == {"cat": 50, "class 2": 40}  # the recipe names 'cat'; the other came from the data
    assert shown["train_examples"] == 90 and shown["amount"] == {"tokens": 1234.0}
    unreadable = counts_only({**data, "balance": {}, "unavailable": "data/x.jsonl line 3: 'secret' is not JSON"}, None)
    assert "secret" not in json.dumps(unreadable) and "could not be read" in unreadable["unavailable"]


def test_the_files_a_checkpoints_code_would_run_are_named(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "x", "auto_map": {
        "AutoConfig": "configuration_x.XConfig", "AutoModel": "other/repo--modeling_x.XModel"}}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["tokenization_x.XTok", None]}}))
    assert checkpoint_code(str(folder)) == ["configuration_x.py", "other/repo:modeling_x.py", "tokenization_x.py"]
    assert "configuration_x.py, other/repo:modeling_x.py, tokenization_x.py" in remote_code_summary(str(folder))
    assert checkpoint_code(str(tmp_path / "nowhere")) == [] and checkpoint_code("org/not-cached") == []


SAYS_IT_RUNS = """
print("the checkpoint's own code is running", flush=True)
from transformers import LlamaConfig
class CodeConfig(LlamaConfig):
    model_type = "code-llama-test"
"""


def test_a_run_names_the_checkpoints_files_before_it_loads_them(tmp_path):
    """`run` honours model.trust_remote_code (the person runs the recipe), and says first which files run."""
    from tests.conftest import run_cli

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({
        "model_type": "code-llama-test", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 1, "num_attention_heads": 2, "auto_map": {"AutoConfig": "configuration_code.CodeConfig"}}))
    (model / "configuration_code.py").write_text(SAYS_IT_RUNS)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model:\n  modality: causal-lm\n  base: {model}\n  trust_remote_code: true\n"
                      "data:\n  format: synthetic\n  train_size: 8\n  eval_size: 2\nhardware:\n  accelerator: cpu\n")
    result = run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--max-steps", "1")
    said = f"warning: model.trust_remote_code is true: the checkpoint's own Python code runs on this machine: " \
           f"configuration_code.py (from {model})"
    assert said in result.stdout, result.stdout + result.stderr
    assert result.stdout.index(said) < result.stdout.index("the checkpoint's own code is running")  # said, then run


def test_a_folder_too_large_to_check_for_links_is_refused(repo, monkeypatch):
    import ftrecipe.untrusted

    monkeypatch.setattr(ftrecipe.untrusted, "LINKS_LOOKED_AT", 2)
    for name in ("b", "c", "d"):
        (repo / "recipes" / "data" / f"{name}.jsonl").write_text("{}\n")
    why = leaving_value("data", repo / "recipes", repo)
    assert why == ("'data' holds more than 2 entries, too many to check for links that leave the repository: "
                   "an untrusted review does not read it")
