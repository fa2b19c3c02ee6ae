"""Reviews of recipe changes: the shipped pre-commit hooks, run by pre-commit itself (offline: the same
hooks as `repo: local` with `language: system`), and the pull-request review script the GitHub
workflow runs (its comment body; the workflow does the posting)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e  # runs ftrecipe end to end: outside the fast tier (pytest -m 'not e2e')

yaml = pytest.importorskip("yaml", reason="pre-commit (the dev extra) brings PyYAML")
pytest.importorskip("pre_commit", reason="pre-commit is in the dev extra: pip install -e '.[dev]'")

LLAMA = (ROOT / "recipes" / "demo" / "llama.yaml").read_text()
SCRIPT = ROOT / ".github" / "scripts" / "recipe-review.sh"
BIN = str(Path(sys.executable).parent)  # this interpreter's `ftrecipe` console script comes first
ENV = {**os.environ, "PATH": os.pathsep.join([BIN, os.environ.get("PATH", "")]), "GIT_AUTHOR_NAME": "t",
       "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
BAD_LINE = LLAMA.splitlines().index("  batch_size: 8") + 1

if shutil.which("ftrecipe", path=ENV["PATH"]) is None:
    pytest.skip("the ftrecipe command is not installed (pip install -e .)", allow_module_level=True)


def run(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=repo, capture_output=True, text=True, env={**ENV, **env}, timeout=600)


def git(repo: Path, *args: str) -> None:
    out = run(repo, "git", *args)
    assert out.returncode == 0, out.stderr


def commit(repo: Path, files: dict[str, str | None], message: str) -> str:
    """Write (or, for None, delete) files, commit them all; returns the commit's sha."""
    for name, text in files.items():
        path = repo / name
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return run(repo, "git", "rev-parse", "HEAD").stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    return repo


# ---------------------------------------------------------------- the pre-commit hooks


def shipped_hooks() -> dict[str, dict]:
    return {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}


def test_the_shipped_hooks_are_declared_as_documented():
    hooks = shipped_hooks()
    assert set(hooks) == {"ftrecipe-validate", "ftrecipe-plan"}
    # the recipes are a stranger's: nothing outside the repository is read, no checkpoint code runs
    assert hooks["ftrecipe-validate"]["entry"] == "ftrecipe validate --untrusted"
    assert hooks["ftrecipe-plan"]["entry"] == "ftrecipe plan --check --untrusted"
    assert not any("--trust-remote-code" in hook["entry"] for hook in hooks.values())
    commands = [line for line in SCRIPT.read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not any("--trust-remote-code" in line for line in commands)
    assert hooks["ftrecipe-plan"]["verbose"] is True
    for hook in hooks.values():
        assert hook["language"] == "python" and hook["pass_filenames"] is True


def test_the_workflow_restores_the_plan_cache_before_it_plans(monkeypatch):
    """The pull request's earlier pushes measured its models already: the job reuses them from where
    `ftrecipe plan` keeps them by default."""
    from ftrecipe.plan.cache import cache_root

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "recipe-review.yml").read_text())
    steps = workflow["jobs"]["review"]["steps"]
    names = [step.get("name") for step in steps]
    (cached,) = [step for step in steps if step.get("uses", "").startswith("actions/cache@")]
    assert names.index(cached["name"]) < names.index("Validate and plan the changed recipes")
    monkeypatch.delenv("FTRECIPE_CACHE_DIR")  # (the suite's own, per test)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert Path(cached["with"]["path"]).expanduser() == cache_root() / "plan"
    assert "hashFiles('requirements/ci.txt')" in cached["with"]["key"] and "github.run_id" in cached["with"]["key"]


def local_config(repo: Path, hook_id: str) -> None:
    """The shipped hook as a `repo: local` hook on the ftrecipe already installed: nothing to build or fetch."""
    hook = {**shipped_hooks()[hook_id], "language": "system"}
    hook.pop("description", None)
    (repo / ".pre-commit-config.yaml").write_text(json.dumps({"repos": [{"repo": "local", "hooks": [hook]}]}, indent=2))


def pre_commit(repo: Path) -> subprocess.CompletedProcess[str]:
    return run(repo, sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never",
               PRE_COMMIT_HOME=str(repo.parent / "pre-commit-home"))


def test_the_validate_hook_passes_a_valid_recipe_and_points_at_a_mistake(repo):
    local_config(repo, "ftrecipe-validate")
    commit(repo, {
        "recipes/llama.yaml": LLAMA,
        "recipes/data/notes.yaml": "not: [a recipe\n",  # sample data: never passed to the hook
        "README.yaml": "neither: {a recipe\n",  # outside recipes/
    }, "a valid recipe")
    out = pre_commit(repo)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ftrecipe validate" in out.stdout and "Passed" in out.stdout

    commit(repo, {"recipes/team/bad.yaml": LLAMA.replace("batch_size: 8", "batch_sise: 8")}, "an invalid recipe")
    out = pre_commit(repo)
    assert out.returncode == 1 and "Failed" in out.stdout, out.stdout + out.stderr
    assert f"recipes/team/bad.yaml:{BAD_LINE}:3: training.batch_sise: unknown key 'batch_sise'" in out.stdout
    assert "notes.yaml" not in out.stdout and "README.yaml" not in out.stdout


def test_the_plan_hook_shows_its_account_and_refuses_a_recipe_over_budget(repo):
    """Waits for `ftrecipe plan` (the lead's ftrecipe/plan/build.py and the causal-lm plan hooks)."""
    local_config(repo, "ftrecipe-plan")
    commit(repo, {"recipes/llama.yaml": LLAMA}, "a recipe that fits")
    out = pre_commit(repo)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "- hook id: ftrecipe-plan" in out.stdout and "recipes/llama.yaml" in out.stdout  # verbose: the account shows

    over = LLAMA.replace("  accelerator: auto\n", "  accelerator: auto\n  memory: 1MiB\n")
    commit(repo, {"recipes/tight.yaml": over}, "a recipe over its memory budget")
    out = pre_commit(repo)
    assert out.returncode == 1 and "Failed" in out.stdout, out.stdout + out.stderr
    assert "recipes/tight.yaml" in out.stdout


# ---------------------------------------------------------------- the pull-request review script


def review(repo: Path, base: str) -> tuple[subprocess.CompletedProcess[str], str]:
    body = repo.parent / "body.md"
    out = run(repo, "bash", str(SCRIPT), base, str(body))
    return out, body.read_text() if body.exists() else ""


def two_commits(repo: Path) -> str:
    """Base: two recipes and sample data; head: one recipe modified (LoRA), one new, one invalid, one
    removed, the sample data changed. Returns the base sha."""
    base = commit(repo, {"recipes/llama.yaml": LLAMA, "recipes/old.yaml": LLAMA, "recipes/data/notes.yaml": "a: 1\n",
                         "docs/other.yaml": "b: 1\n"}, "base")
    lora = LLAMA.replace("strategy: full", "strategy: lora").replace("batch_size: 8", "batch_size: 16")
    commit(repo, {"recipes/llama.yaml": lora, "recipes/new.yaml": LLAMA, "recipes/bad.yaml": LLAMA.replace("batch_size: 8", "batch_sise: 8"),
                  "recipes/old.yaml": None, "recipes/data/notes.yaml": "a: 2\n", "docs/other.yaml": "b: 2\n"}, "head")
    return base


def test_the_review_script_builds_one_comment_body(repo):
    base = two_commits(repo)
    short = run(repo, "git", "rev-parse", "--short", base).stdout.strip()
    out, body = review(repo, base)
    assert out.returncode == 1, out.stderr  # an invalid recipe fails the check...
    assert f"::error file=recipes/bad.yaml,line={BAD_LINE},col=3::training.batch_sise: unknown key" in out.stdout  # ...annotated
    assert body.startswith("<!-- ftrecipe-recipe-review -->\n## Recipe review\n")  # ...and the comment is still written
    assert f"Against `{short}`: 1 modified, 2 new, 1 removed." in body
    diff = body.index(f"### `git:{short}:recipes/llama.yaml` → `recipes/llama.yaml`")
    assert "| `freeze.strategy` | `full` | `lora` |" in body[diff:] and "| `training.batch_size` | `8` | `16` |" in body[diff:]
    assert "<details><summary>Plan of <code>recipes/llama.yaml</code></summary>" in body[diff:]
    assert "### `recipes/new.yaml` (new)" in body and "git:" not in body[body.index("### `recipes/new.yaml`"):].split("###")[1]
    assert f"### `recipes/bad.yaml` (invalid)\n\n```text\nrecipes/bad.yaml:{BAD_LINE}:3: training.batch_sise" in body
    assert body.rstrip().endswith("Removed: `recipes/old.yaml`")
    assert "notes.yaml" not in body and "other.yaml" not in body
    # each plan, and what the change does
    assert "failed (exit" not in body and "found a mistake" not in body and "unavailable" not in body, body
    assert "| trainable parameters |" in body and "| memory per device |" in body


def test_the_review_script_without_recipe_changes_and_with_a_bad_base(repo):
    base = commit(repo, {"recipes/llama.yaml": LLAMA}, "base")
    commit(repo, {"recipes/data/notes.yaml": "a: 1\n"}, "only sample data")
    out, body = review(repo, base)
    assert out.returncode == 0 and body == "" and "no recipe changed" in out.stdout
    out, body = review(repo, "0" * 40)
    assert out.returncode == 2 and body == ""
    assert f"recipe-review: '{'0' * 40}' is not a commit of this repository" in out.stderr


# ---------------------------------------------------------------- a hostile pull request

MARKED = """
import pathlib, os
pathlib.Path(os.environ["FTRECIPE_TEST_MARKER"]).write_text("the checkpoint's own code ran")
from transformers import LlamaConfig
class EvilConfig(LlamaConfig):
    model_type = "evil-llama"
"""
EVIL_CONFIG = {"model_type": "evil-llama", "architectures": ["EvilForCausalLM"], "vocab_size": 100, "hidden_size": 64,
               "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
               "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}


def hostile_recipes(base_recipe: str) -> dict[str, str]:
    """A checkpoint whose code writes a marker when imported (asked for by the recipe key), and data
    paths that leave the repository three ways."""
    evil = base_recipe.replace("  base: llama                # architecture family of the from-scratch model\n  init: scratch\n",
                               "  base: models/evil\n  trust_remote_code: true\n").replace("strategy: full", "strategy: lora")
    jsonl = "data:\n  format: jsonl\n  train: {}\n"
    head, _, tail = base_recipe.partition("data:\n")
    tail = tail[tail.index("training:"):]
    return {
        "models/evil/config.json": json.dumps(EVIL_CONFIG),
        "models/evil/configuration_evil.py": MARKED,
        "models/evil/modeling_evil.py": MARKED,
        "recipes/evil.yaml": evil,
        "recipes/climb.yaml": head + jsonl.format("../../../../../../etc/passwd") + tail,
        "recipes/absolute.yaml": head + jsonl.format("/etc/passwd") + tail,
        "recipes/link.yaml": head + jsonl.format("data/passwd.jsonl") + tail,
    }


def test_a_hostile_pull_request_runs_no_checkpoint_code_and_reads_nothing_outside(repo, tmp_path):
    marker = tmp_path / "MARKER"
    base = commit(repo, {"recipes/llama.yaml": LLAMA}, "base")
    (repo / "recipes" / "data").mkdir(parents=True)
    (repo / "recipes" / "data" / "passwd.jsonl").symlink_to("/etc/passwd")
    commit(repo, hostile_recipes(LLAMA), "a hostile pull request")
    out, body = review(repo, base)  # validate, plan and diff as the workflow runs them
    for command in (["validate", "--untrusted"], ["plan", "--untrusted"], ["diff", "--untrusted", "recipes/llama.yaml"]):
        run(repo, "ftrecipe", *command, "recipes/evil.yaml", FTRECIPE_TEST_MARKER=str(marker))
    local_config(repo, "ftrecipe-plan")
    hooks = run(repo, sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never",
                PRE_COMMIT_HOME=str(repo.parent / "pre-commit-home"), FTRECIPE_TEST_MARKER=str(marker))
    assert not marker.exists()  # no review command imported the checkpoint's module
    assert out.returncode == 1  # the paths that leave the repository are mistakes, each at its key
    for name, value, why in (("climb", "../../../../../../etc/passwd", "resolves outside the repository"),
                             ("absolute", "/etc/passwd", "is an absolute path"),
                             ("link", "data/passwd.jsonl", "is a symbolic link that leaves the repository")):
        assert f"::error file=recipes/{name}.yaml,line=" in out.stdout and f"data.train: '{value}' {why}" in out.stdout
    assert "root:" not in body and "root:" not in out.stdout and "root:" not in hooks.stdout  # /etc/passwd was not read
    assert "plan unavailable: the architecture of 'models/evil' is the checkpoint's own Python code " \
           "(configuration_evil.py, modeling_evil.py)" in body
    assert hooks.returncode == 1 and "data.train: '/etc/passwd' is an absolute path" in hooks.stdout


def test_trust_remote_code_on_the_command_line_is_what_lets_a_plan_run_it(repo, tmp_path):
    marker = tmp_path / "MARKER"
    commit(repo, hostile_recipes(LLAMA), "a checkpoint with code")
    out = run(repo, "ftrecipe", "plan", "--trust-remote-code", "recipes/evil.yaml", FTRECIPE_TEST_MARKER=str(marker))
    assert marker.exists(), out.stderr  # the person said so: the plan built the checkpoint's own classes


def test_a_base_of_a_known_family_is_planned_from_its_config_without_its_code(repo, tmp_path):
    """config.json names a model type Transformers knows (as well as an auto_map): planned with Transformers'
    own class, the code unrun, and the plan says so."""
    marker = tmp_path / "MARKER"
    files = hostile_recipes(LLAMA)
    files["models/evil/config.json"] = json.dumps({**EVIL_CONFIG, "model_type": "llama"})
    commit(repo, files, "a known family with code beside it")
    out = run(repo, "ftrecipe", "plan", "--untrusted", "--format", "json", "recipes/evil.yaml", FTRECIPE_TEST_MARKER=str(marker))
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["params"]["total"] > 0 and not marker.exists()
    assert any(w.startswith("model.trust_remote_code is true, but the plan ran none of the checkpoint's own code")
               for w in plan["warnings"])
