"""Does Whisper's feature extraction and augmentation keep up with training?

Runs the offline demo's model and data with the full call-centre augmentation chain through
`ftrecipe run` (in this process) and reports the share of step time spent waiting for data (goal:
under 5%), plus how many seconds of audio the input pipeline alone turns into features per second.

    python bench/whisper_data.py [--steps 60] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

CHAIN = [
    {"name": "telephone", "codec": ["mulaw", "alaw", "none"], "p": 0.7},
    {"name": "noise", "snr_db": [5, 25], "kind": ["white", "pink", "hum"], "p": 0.6},
    {"name": "speed", "factor": [0.9, 1.1], "p": 0.4},
    {"name": "pitch", "semitones": [-2, 2], "p": 0.3},
    {"name": "gain", "gain_db": [-10, 6], "p": 0.3},
]


def recipe(steps: int, workers: int | None) -> dict:
    return {
        "name": "bench-whisper-data",
        "model": {"modality": "whisper", "base": "openai/whisper-tiny", "init": "scratch",
                  "config": {"d_model": 64, "chunk_length": 3}},
        "data": {"format": "synthetic", "train_size": 600, "eval_size": 1, "max_words": 2, "augment": CHAIN},
        "training": {"max_steps": steps, "batch_size": 16, "learning_rate": 1e-3, "log_every": max(1, steps // 6),
                     "checkpoint_every": 10**6},
        "hardware": {"dataloader_workers": workers},
        "evaluation": {"before_training": False},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--workers", type=int, default=None, help="data-loading workers (default: the runner's choice)")
    args = parser.parse_args()

    from ftrecipe.records import resolve
    from ftrecipe.registry import get_registry
    from ftrecipe.runner.entry import run_recipe
    from ftrecipe.task import TaskContext
    from ftrecipe.validation import validate_data

    raw = recipe(args.steps, args.workers)
    result = validate_data(raw, source="bench.yaml")
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
        args_ns = SimpleNamespace(output=str(Path(out) / "run"), smoke=False, resume=False, max_steps=None, quiet=True,
                                  debug=False, save_augmented=0, argv=["run", "bench.yaml"])
        assert run_recipe(result, args_ns) == 0
        records = [json.loads(x) for x in (Path(out) / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"][1:]
    wait = sum(r["data_wait_fraction"] for r in train) / len(train)
    print(f"training: {sum(r['samples_per_second'] for r in train) / len(train):,.1f} clips/s on {torch.get_num_threads()} threads")
    print(f"data wait: {100 * wait:.1f}% of step time  (goal < 5%)")


if __name__ == "__main__":
    main()
