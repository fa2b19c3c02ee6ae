"""Does Whisper's feature extraction and augmentation keep up with training?

Runs the offline demo (recipes/demo/whisper.yaml: its model, data and batch size) with the full
call-centre augmentation chain instead of the demo's light one, through `ftrecipe run` in this
process, and reports the share of training time the step spent waiting for its batch (goal: under
5%), plus how many seconds of audio the input pipeline alone turns into features per second.

    python bench/whisper_data.py [--steps 120] [--workers N]

On a CPU with fewer than 4 cores the runner uses no loader worker, so the "wait" is the data work
done in series with the step; compare --workers 1 (less waiting, but the worker takes a core from
the compute threads) by clips/s, not by wait alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

DEMO = Path(__file__).resolve().parent.parent / "recipes" / "demo" / "whisper.yaml"
CHAIN = (
    '[{name: telephone, codec: [mulaw, alaw, none], p: 0.7},'
    ' {name: noise, snr_db: [5, 25], kind: [white, pink, hum], p: 0.6},'
    ' {name: speed, factor: [0.9, 1.1], p: 0.4},'
    ' {name: pitch, semitones: [-2, 2], p: 0.3},'
    ' {name: gain, gain_db: [-10, 6], p: 0.3}]'
)


def overrides(steps: int, workers: int | None) -> list[str]:
    return [
        f"data.augment={CHAIN}",
        f"training.max_steps={steps}",
        f"training.log_every={max(1, steps // 12)}",
        "training.checkpoint_every=1000000",
        "evaluation.before_training=false",
        "evaluation.max_examples=16",
        *([f"hardware.dataloader_workers={workers}"] if workers is not None else []),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--workers", type=int, default=None, help="data-loading workers (default: the runner's choice)")
    args = parser.parse_args()

    from ftrecipe.records import resolve
    from ftrecipe.registry import get_registry
    from ftrecipe.runner.entry import RunOptions, run_recipe
    from ftrecipe.task import TaskContext
    from ftrecipe.validation import validate_file

    result = validate_file(DEMO, overrides=overrides(args.steps, args.workers))
    assert result.ok, [d.text() for d in result.diagnostics]

    # 1. The input pipeline alone: audio seconds turned into augmented features per second.
    registry = get_registry()
    task = resolve(registry.modalities["whisper"].task)(
        TaskContext(recipe=result.recipe, registry=registry, base_dir=Path("."), output_dir=Path(tempfile.mkdtemp()), log=lambda m: None)
    )
    data = task.build_data()
    from ftrecipe.data import EpochIndex

    count = min(len(data.train), 160)
    start = time.perf_counter()
    for i in range(count):
        data.train[EpochIndex(i, 0)]
    elapsed = time.perf_counter() - start
    audio_seconds = sum(row["duration"] for row in data.train.rows[:count])
    print(f"input pipeline: {audio_seconds / elapsed:,.0f} audio-seconds/s, {count / elapsed:,.0f} clips/s (one process)")

    # 2. Training through the runner: how long the step waits for the next batch.
    with tempfile.TemporaryDirectory() as out:
        args_ns = RunOptions(output=str(Path(out) / "run"), quiet=True, argv=["run", "bench.yaml"])
        assert run_recipe(result, args_ns) == 0
        records = [json.loads(x) for x in (Path(out) / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"][1:]  # the first window includes start-up
    every, batch = result.recipe.training.log_every, result.recipe.training.batch_size
    seconds = [every * batch / r["samples_per_second"] for r in train]
    wait = sum(r["data_wait_fraction"] * t for r, t in zip(train, seconds)) / sum(seconds)
    print(f"training: {len(train) * every * batch / sum(seconds):,.1f} clips/s on {torch.get_num_threads()} threads")
    print(f"data wait: {100 * wait:.1f}% of training time  (goal < 5%; epoch starts included)")


if __name__ == "__main__":
    main()
