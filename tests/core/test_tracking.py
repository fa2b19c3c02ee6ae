"""Experiment trackers, offline against the real libraries: the located error for a missing library, and
evaluation pictures reaching TensorBoard and MLflow once per step. A whole run with all three backends, killed
and resumed, is read back in tests/core/test_runner.py (it shares that test's two runs)."""

from __future__ import annotations

import pytest

from tests.conftest import TOY
from tests.core.trackers import mlflow_client, tensorboard_scalars


# ---------------------------------------------------------------- tests


def test_a_tracker_that_is_not_installed_is_a_located_error_with_the_install_command(monkeypatch, example_registry):
    import ftrecipe.sections
    from ftrecipe.validation import validate_text

    text = TOY.read_text() + "tracking:\n  backends: [tensorboard, wandb]\n"
    monkeypatch.setattr(ftrecipe.sections, "library_installed", lambda module: module != "wandb")
    result = validate_text(text, source="toy.yaml", registry=example_registry)
    line = text.splitlines().index("  backends: [tensorboard, wandb]") + 1
    column = "  backends: [tensorboard, wandb]".index("wandb") + 1
    assert [d.text() for d in result.diagnostics] == [
        f"toy.yaml:{line}:{column}: tracking.backends[1]: wandb is not installed: pip install 'ftrecipe[tracking]' "
        "(or pip install wandb)"]
    repeated = validate_text(TOY.read_text() + "tracking:\n  backends: [mlflow, mlflow]\n", source="toy.yaml",
                             registry=example_registry)
    assert [d.message for d in repeated.diagnostics] == ["backends repeat: mlflow"]
    monkeypatch.undo()
    assert validate_text(text, source="toy.yaml", registry=example_registry).ok


@pytest.fixture
def main_process():
    """Accelerate's process state, which its trackers consult, for an in-process test; reset afterwards."""
    from accelerate.state import PartialState

    yield PartialState(cpu=True)
    PartialState._reset_state()


def test_each_evaluations_pictures_reach_the_trackers_once_per_step(tmp_path, monkeypatch, example_registry, main_process):
    """The images an evaluation returns (sample grids, prediction pictures) become one image per step under
    ``samples/<name>``, beside its metrics; a step a resumed run replays is not sent again."""
    from PIL import Image

    from ftrecipe.runner.outputs import MetricsLog
    from ftrecipe.runner.tracking import Tracking
    from ftrecipe.task import EvalResult
    from ftrecipe.validation import validate_text

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    text = TOY.read_text() + "tracking:\n  backends: [tensorboard, mlflow]\n  artifacts: false\n"
    recipe = validate_text(text, source="toy.yaml", registry=example_registry).recipe
    log = MetricsLog(tmp_path / "metrics.jsonl")
    tracking = Tracking(recipe, tmp_path)
    tracking.start({"training": {"learning_rate": 0.01}}, {"train_examples": 128})
    log.observers.append(tracking)
    for kind, step, colour in (("eval_before", 0, "red"), ("eval", 4, "blue"), ("eval", 4, "green")):  # 4 again: replayed
        log.append({"step": step, "kind": kind, "mse": 1.0 / (step + 1)})
        log.samples(kind, step, EvalResult({"mse": 1.0}, images={"grid": Image.new("RGB", (8, 6), colour)}))
    tracking.finish({"steps": 4}, None, None)

    scalars, other = tensorboard_scalars(tmp_path / "tensorboard" / tmp_path.name)
    assert other["images"] == {"samples/grid": [0, 4]}
    assert scalars["eval/mse"] == [(0, 1.0), (4, pytest.approx(0.2))]
    client = mlflow_client(tracking.runs["mlflow"]["tracking_uri"])
    run_id = tracking.runs["mlflow"]["run_id"]
    pictures = sorted(a.path.split("+")[2] for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png"))
    assert pictures == ["0", "4"]  # mlflow.log_image's file names: <key>+step+<step>+...
    assert client.get_run(run_id).data.params == {"training.learning_rate": "0.01"}
    assert [m.step for m in client.get_metric_history(run_id, "eval/mse")] == [0, 4]
