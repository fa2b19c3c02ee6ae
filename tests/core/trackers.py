"""Reading experiment trackers' records back offline, for the tests: TensorBoard's event files with its event
reader, MLflow's local file store through its client, W&B's offline run files with its own protobuf classes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

TRACKING = """tracking:
  backends: [tensorboard, mlflow, wandb]
  project: toy-project
  tags: [nightly]
"""
def tensorboard_scalars(log_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], dict]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags["scalars"]}
    images = {tag: [e.step for e in events.Images(tag)] for tag in tags["images"]}
    return scalars, {"images": images, "tensors": tags["tensors"]}


def mlflow_client(tracking_uri: str):
    import os

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3's opt-in for its file store
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def wandb_records(path: Path) -> list:
    """The records of a W&B run file. wandb 0.31 ships no Python reader for it (its Go core reads it), so
    this walks the LevelDB log format the file is written in (after W&B's 7-byte ':W&B' header) and lets
    wandb's own protobuf classes parse each record."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B", path
    position, pending, records = 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            break
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last fragment of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(records: list) -> list[dict]:
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows



def check_resumed_toy_run(out: Path, started: dict, download_to: Path) -> None:
    """A toy run with TRACKING, killed after step 6 (``started``: its tracking.json then) and resumed from step
    4: every backend holds one run with each step once, the evaluations, images, parameters and the model."""
    import os

    tracking = json.loads((out / "tracking.json").read_text())
    assert tracking["runs"] == started["runs"]  # the same tracker runs, reopened
    runs = tracking["runs"]

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]
    assert [step for step, _ in train] == list(range(2, 17, 2))
    before = next(r for r in records if r["kind"] == "eval_before")["mse"]
    after = next(r for r in records if r["kind"] == "eval_after")["mse"]

    # TensorBoard: each step once, as metrics.jsonl has it; the evaluations; the loss curve; parameters
    scalars, other = tensorboard_scalars(out / runs["tensorboard"]["log_dir"])
    assert [step for step, _ in scalars["train/loss"]] == [step for step, _ in train]
    assert [value for _, value in scalars["train/loss"]] == pytest.approx([loss for _, loss in train])
    assert scalars["eval/mse"] == [(0, pytest.approx(before)), (16, pytest.approx(after))]
    assert scalars["eval_after/mse"] == [(16, pytest.approx(after))] and len(scalars["eval/loss"]) == 2
    assert other["images"] == {"loss_curve": [16]} and "data_report/text_summary" in other["tensors"]
    hparams = list((out / runs["tensorboard"]["log_dir"]).glob("*/hparams.yml"))
    assert len(hparams) == 1 and "training.learning_rate: 0.01" in hparams[0].read_text()

    # MLflow: the one run, finished, with the recipe as parameters, every step once, images and the model
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    client = mlflow_client(runs["mlflow"]["tracking_uri"])
    run_id = runs["mlflow"]["run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert client.get_experiment(run.info.experiment_id).name == "toy-project"
    assert run.data.params["training.learning_rate"] == "0.01" and run.data.params["model.modality"] == "toy-regression"
    assert {"nightly", "ftrecipe", "toy-regression", "full"} <= set(run.data.tags)
    history = client.get_metric_history(run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(s, pytest.approx(v)) for s, v in train]
    assert run.data.metrics["eval_before/mse"] == pytest.approx(before)
    assert run.data.metrics["eval_after/mse"] == pytest.approx(after)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"data_report.json", "summary.json", "recipe.resolved.yaml", "model", "images"} <= artifacts
    assert {a.path for a in client.list_artifacts(run_id, "model")} == {"model/model.pt", "model/README.md"}
    report = json.loads(Path(client.download_artifacts(run_id, "data_report.json", str(download_to))).read_text())
    assert report["train_examples"] == 128

    # W&B, offline: the killed part and the resumed part are files of one run id. W&B writes its file every
    # second (ftrecipe's setting; 15 s by default), so the killed part kept what was written before the
    # kill; the resumed part starts after the last step logged, so no step is there twice
    wandb_id = runs["wandb"]["id"]
    files = sorted((out / "wandb").glob(f"offline-run-*-{wandb_id}/run-{wandb_id}.wandb"))
    assert len(files) == 2
    killed, continued = (wandb_records(path) for path in files)

    def losses(records: list) -> list[tuple[int, float]]:
        return [(row["_step"], row["train/loss"]) for row in wandb_history(records) if "train/loss" in row]

    early = [step for step, _ in losses(killed)]
    assert early == [2, 4, 6][:len(early)]
    assert losses(continued) == [(step, pytest.approx(loss)) for step, loss in train if step > 6]
    final = [row for row in wandb_history(continued) if row["_step"] == 16]
    assert final[-1]["eval_after/mse"] == pytest.approx(after) and final[-1]["loss_curve/_type"] == "images/separated"
    run_record = next(r.run for r in continued if r.WhichOneof("record_type") == "run")
    assert run_record.run_id == wandb_id and run_record.project == "toy-project" and run_record.display_name == "run"
    assert {"nightly", "ftrecipe", "toy-regression", "full"} <= set(run_record.tags)
    config = {item.key: json.loads(item.value_json) for r in continued if r.WhichOneof("record_type") == "config"
              for item in r.config.update}
    assert config["training"]["learning_rate"] == 0.01 and config["data_report"]["train_examples"] == 128
    model = [r.artifact for r in continued if r.WhichOneof("record_type") == "artifact"]
    assert [(a.type, a.name) for a in model] == [("model", "run-model")]
    assert {entry.path for entry in model[0].manifest.contents} == {"model.pt", "README.md"}
