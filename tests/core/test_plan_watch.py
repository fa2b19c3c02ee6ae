"""`ftrecipe plan --watch`: one process plans again on every saved change to a recipe, until Ctrl-C."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable

import pytest

from ftrecipe.cli import main
from ftrecipe.plan import watch as watching
from tests.conftest import ROOT

DEMO = ROOT / "recipes" / "demo" / "llama.yaml"


def scripted(monkeypatch, steps: list[Callable[[], None] | None]) -> list[float]:
    """Replace the pause between polls: the i-th pause runs ``steps[i]`` (an edit, or nothing); after the
    last one the user presses Ctrl-C. Returns the pauses taken."""
    taken: list[float] = []

    def pause(seconds: float) -> None:
        taken.append(seconds)
        if len(taken) > len(steps):
            raise KeyboardInterrupt
        step = steps[len(taken) - 1]
        if step is not None:
            step()

    monkeypatch.setattr(watching, "pause", pause)
    return taken


def test_it_plans_each_saved_change_once_and_stops_at_ctrl_c(tmp_path, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("a: 1\n")
    plans: list[str] = []

    def plan_once() -> int:
        plans.append(recipe.read_text())
        return 0 if "bad" not in recipe.read_text() else 2

    scripted(monkeypatch, [
        None,                                    # nothing changed
        lambda: recipe.write_text("a: 1\n"),     # rewritten unchanged (a checkout, an editor's save): no plan
        lambda: recipe.write_text("a: 2\n"),     # saved: planned after it holds still for one more poll
        None,
        lambda: recipe.write_text("a: 3"),       # half written ...
        lambda: recipe.write_text("a: 3\n"),     # ... and finished before the next poll: not planned yet
        None,                                    # changed since the plan,
        None,                                    # and still: planned once, whole
        lambda: recipe.unlink(),                 # an editor's save through delete-and-write
        None,                                    # missing and still: said, not planned
        lambda: recipe.write_text("bad\n"),      # back, with a mistake: its exit code is shown, the watch goes on
        None,
    ])
    out = io.StringIO()
    assert watching.watch([str(recipe)], plan_once, out=out) == 0
    assert plans == ["a: 1\n", "a: 2\n", "a: 3\n", "bad\n"]
    text = out.getvalue()
    assert text.count(f"{recipe} changed at") == 3 and "missing; waiting for it to come back" in text
    assert "-- plan 4 exit 2 in" in text and text.rstrip().endswith("stopped watching after 4 plans --")


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def json_plans(text: str) -> list[dict]:
    """The JSON plans printed between the watch's own lines."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        plan, end = decoder.raw_decode(text, at)
        found.append(plan)
        at = end
    return found


def test_the_command_plans_the_edited_recipe_in_the_same_process_and_survives_a_mistake(tmp_path, monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    recipe = tmp_path / "llama.yaml"
    text = DEMO.read_text()
    recipe.write_text(text)
    assert "  batch_size: 8\n" in text
    scripted(monkeypatch, [
        lambda: recipe.write_text(text.replace("  batch_size: 8\n", "  batch_size: 64\n")),
        None,
        lambda: recipe.write_text(text.replace("  batch_size: 8\n", "  batch_size: sixty\n")),
        None,
        lambda: recipe.write_text(text.replace("  batch_size: 8\n", "  batch_size: 32\n")),
        None,
    ])
    code, out, err = run_cli("plan", str(recipe), "--watch", "--format", "json")
    assert code == 0, err
    first, bigger, fixed = json_plans(out)
    assert first["recipe"] == bigger["recipe"] == fixed["recipe"]
    memory = [plan["memory"]["breakdown"]["activations"] for plan in (first, bigger, fixed)]
    assert memory[0] < memory[2] < memory[1]  # batch 8, 64, 32: each edit planned afresh
    assert first["params"] == bigger["params"]  # the model is the same
    # the mistake is located as `ftrecipe validate` would put it, and the watch goes on
    assert f"{recipe}:" in err and "training.batch_size" in err
    assert "-- plan 3 exit 2 in" in out and "-- plan 4 planned in" in out and "stopped watching after 4 plans" in out


@pytest.mark.parametrize("flag", [["--check"], ["--probe", "2"]])
def test_watch_refuses_the_single_plan_flags(flag):
    code, _, err = run_cli("plan", str(DEMO), "--watch", *flag)
    assert code == 2 and "--watch plans until Ctrl-C" in err


def test_in_text_each_later_plan_says_what_the_edit_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    recipe = tmp_path / "llama.yaml"
    text = DEMO.read_text()
    recipe.write_text(text)
    bigger = text.replace("  batch_size: 8\n", "  batch_size: 64\n")
    scripted(monkeypatch, [
        lambda: recipe.write_text(bigger),
        None,
        lambda: recipe.write_text(bigger + "# a comment only\n"),
        None,
    ])
    code, out, err = run_cli("plan", str(recipe), "--watch")
    assert code == 0, err
    first, edit, comment = out.split(f"since the last plan of {recipe}:")  # none after the first plan
    assert "-- plan 1 planned" in first and "-- plan 2 planned" in edit and "-- plan 3 planned" in comment
    edit, comment = edit.split("-- plan 2 planned")[0], comment.split("-- plan 3 planned")[0]  # what each edit did
    assert "~ training.batch_size: 8 -> 64" in edit
    assert "memory per device" in edit and "total parameters" not in edit  # only the numbers that moved
    assert "no change after resolution" in comment and "memory per device" not in comment


def test_an_input_the_recipe_names_is_watched_too(tmp_path, monkeypatch):
    recipe, data = tmp_path / "r.yaml", tmp_path / "train.csv"
    recipe.write_text("a: 1\n")
    data.write_text("x\n1\n")
    plans: list[str] = []

    def plan_once() -> int:
        plans.append(data.read_text())
        return 0

    scripted(monkeypatch, [
        None,
        lambda: data.write_text("x\n1\n2\n"),    # new rows: planned again once they hold still
        None,
        None,
    ])
    out = io.StringIO()
    assert watching.watch([str(recipe)], plan_once, out=out, named=lambda: [data]) == 0
    assert plans == ["x\n1\n", "x\n1\n2\n"]
    assert f"-- {data} changed at" in out.getvalue() and "and 1 input(s) it names" in out.getvalue()


def test_new_rows_in_the_recipes_data_are_planned(tmp_path, monkeypatch):
    """The shipped tweet recipe, copied with its CSVs: rows appended to its training file while watched
    are counted by the next plan, which says what moved."""
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    shipped = ROOT / "recipes" / "bert-tweet-sentiment.yaml"
    (tmp_path / "data").mkdir()
    for name in ("tweets-train.csv", "tweets-test.csv"):
        (tmp_path / "data" / name).write_bytes((shipped.parent / "data" / name).read_bytes())
    recipe = tmp_path / "tweets.yaml"
    recipe.write_text(shipped.read_text())
    train = tmp_path / "data" / "tweets-train.csv"
    rows = train.read_text().splitlines()
    scripted(monkeypatch, [lambda: train.write_text("\n".join(rows + rows[1:]) + "\n"), None])
    code, out, err = run_cli("plan", str(recipe), "--watch", "--format", "json")
    assert code == 0, err
    before, after = json_plans(out)
    assert after["data"]["train_examples"] == 2 * before["data"]["train_examples"] == 2 * (len(rows) - 1)
    assert f"-- {train} changed at" in out
