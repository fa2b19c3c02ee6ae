"""Training images/s of the YOLO modality: `ftrecipe run` against Ultralytics' own `model.train` (goal: 0.97x or better).

Same process, same drawn dataset (the demo's shapes, written once as a YOLO data YAML), same model and
the very arguments ftrecipe handed Ultralytics' trainer (read back from the run's ``args.yaml``). Both
sides are timed by the same Ultralytics callback, from each epoch's first batch to its last (the first
epoch excluded: warm-up), so per-epoch validation and set-up are not counted on either side. Runs
alternate (ftrecipe, Ultralytics, ftrecipe, ...) and the best epoch rate of each side is compared.

    python bench/yolo_throughput.py              # CPU: 96 images of 128 px, 4 epochs, 2 rounds
    python bench/yolo_throughput.py --tiny       # a few-second sanity run of the script itself
    python bench/yolo_throughput.py --cuda       # one GPU: 512 images of 320 px, batch 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = {  # images, image size, batch, epochs, rounds
    "tiny": (16, 64, 8, 3, 1),
    "cpu": (96, 128, 16, 4, 2),
    "cuda": (512, 320, 32, 5, 2),
}


class EpochClock:
    """Training seconds of each epoch (first batch to last), recorded through Ultralytics' default callbacks.

    Plain closures: a trainer deep-copies the default callbacks, which would copy a bound method's object."""

    def __init__(self) -> None:
        self.epochs: list[float] = []
        self.started = [0.0]

    def install(self) -> None:
        from ultralytics.utils import callbacks

        epochs, started = self.epochs, self.started

        def start(trainer: Any) -> None:
            started[0] = time.perf_counter()

        def end(trainer: Any) -> None:
            epochs.append(time.perf_counter() - started[0])

        callbacks.default_callbacks["on_train_epoch_start"].append(start)
        callbacks.default_callbacks["on_train_epoch_end"].append(end)

    def take(self) -> list[float]:
        taken = list(self.epochs)
        self.epochs.clear()
        return taken


def write_dataset(folder: Path, images: int, size: int) -> Path:
    from ftrecipe_yolo.sections import SyntheticDetectionData
    from ftrecipe_yolo.staging import stage
    from ftrecipe_yolo.synthetic import draw_split

    section = SyntheticDetectionData(format="synthetic", train_size=images, eval_size=max(8, images // 4), image_size=size)
    rows = {"train": draw_split(section, seed=0, count=images, split="train"),
            "eval": draw_split(section, seed=1, count=section.eval_size, split="eval")}
    return stage(rows, list(section.classes), folder)


def through_ftrecipe(data_yaml: Path, out: Path, *, size: int, batch: int, epochs: int, cuda: bool) -> dict[str, Any]:
    from ftrecipe.runner.entry import RunOptions, run_recipe
    from ftrecipe.validation import validate_data

    raw = {
        "name": "yolo-bench",
        "model": {"modality": "yolo", "base": "yolo11n.yaml", "init": "scratch", "image_size": size},
        "head": {"mode": "replace"},
        "data": {"format": "yolo", "yaml": str(data_yaml)},
        "training": {"epochs": epochs, "batch_size": batch, "nominal_batch": 64, "log_every": 10**6},
        "hardware": {"accelerator": "cuda" if cuda else "cpu", "precision": "fp16-mixed" if cuda else "fp32"},
        "evaluation": {"before_training": False},
    }
    result = validate_data(raw, source=str(out / "bench.yaml"))
    assert result.ok, [d.text() for d in result.diagnostics]
    assert run_recipe(result, RunOptions(output=str(out), quiet=True, argv=["run", "bench.yaml"])) == 0
    from ruamel.yaml import YAML

    return YAML(typ="safe").load((out / "ultralytics" / "args.yaml").read_text())


def through_ultralytics(arguments: dict[str, Any], out: Path) -> None:
    """`YOLO(model).train(...)` with ftrecipe's arguments for the trainer (its own output folder)."""
    from ultralytics import YOLO

    kept = {k: v for k, v in arguments.items() if k not in ("model", "mode", "task", "save_dir", "name", "project", "exist_ok", "resume")}
    YOLO(arguments["model"]).train(**kept, project=str(out), name="plain", exist_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--tiny", action="store_true", help="tiny sizes: check the script itself")
    group.add_argument("--cuda", action="store_true", help="GPU sizes, on CUDA")
    args = parser.parse_args()
    images, size, batch, epochs, rounds = SIZES["tiny" if args.tiny else "cuda" if args.cuda else "cpu"]

    from ftrecipe_yolo.offline import ultralytics

    ultralytics()
    clock = EpochClock()
    clock.install()
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="yolo-bench-") as scratch:
        root = Path(scratch)
        data_yaml = write_dataset(root / "data", images, size)
        for round_ in range(rounds):
            arguments = through_ftrecipe(data_yaml, root / f"ftrecipe-{round_}", size=size, batch=batch, epochs=epochs,
                                         cuda=args.cuda)
            ours += clock.take()[1:]
            through_ultralytics(arguments, root / f"ultralytics-{round_}")
            theirs += clock.take()[1:]
    ours_rate, theirs_rate = images / min(ours), images / min(theirs)
    print(f"yolo11n, {images} images of {size} px, batch {batch}, {'cuda' if args.cuda else 'cpu'}: "
          f"ftrecipe {ours_rate:.1f} images/s, Ultralytics model.train {theirs_rate:.1f} images/s")
    print(f"ratio ftrecipe / Ultralytics: {ours_rate / theirs_rate:.3f} (goal >= 0.97)")


if __name__ == "__main__":
    main()
