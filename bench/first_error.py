"""How long `ftrecipe run` takes to say a mistake that needs no model, as a ratio to `import torch`.

Goal (issue 24): at most 1.0x for a bad recipe, missing data, a missing model and an unusable switch
(each is said before torch is imported; tests/core/test_preflight.py checks what is imported, this
script measures the time). Also `validate` (goal: under a third of `import torch`) and `--help`.

    python bench/first_error.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_GOAL, VALIDATE_GOAL = 1.0, 1 / 3

CASES = [
    ("a base model not on this machine", ["run", "recipes/whisper-callcenter.yaml"], 2, RUN_GOAL),
    ("a Diffusers pipeline not on this machine", ["run", "recipes/sd-dreambooth-dog.yaml"], 2, RUN_GOAL),
    ("a missing data file", ["run", "recipes/bert-tweet-sentiment.yaml", "--set", "data.train=data/nope.csv"], 2, RUN_GOAL),
    ("a switch this machine cannot honour", ["run", "recipes/demo/llama.yaml", "--set", "hardware.accelerator=cpu",
                                             "--set", "training.optimizer=paged-adamw-8bit"], 2, RUN_GOAL),
    ("a mistyped key", ["run", "recipes/demo/llama.yaml", "--set", "training.learning_rte=1e-4"], 2, RUN_GOAL),
    ("validate the flagship recipe", ["validate", "recipes/whisper-callcenter.yaml"], 0, VALIDATE_GOAL),
    ("--help", ["--help"], 0, VALIDATE_GOAL),
]


def seconds(command: list[str], repeat: int, expected: int, output: Path | None = None) -> float:
    """The best of ``repeat`` runs of ``command``, which must exit with ``expected``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command + (["--output", str(output)] if output else []), capture_output=True,
                              text=True, cwd=ROOT, env=env)
        best = min(best, time.perf_counter() - start)
        if done.returncode != expected:
            raise SystemExit(f"{' '.join(command)}: exit {done.returncode}, expected {expected}: {done.stderr[-2000:]}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    floor = seconds([sys.executable, "-c", "import torch"], args.repeat, 0)
    print(f"floor: import torch: {floor:.2f} s")
    worst: dict[float, float] = {}
    with tempfile.TemporaryDirectory(prefix="first-error-") as folder:
        for i, (what, argv, code, goal) in enumerate(CASES):
            output = Path(folder) / f"run-{i}" if argv[0] == "run" else None
            took = seconds([sys.executable, "-m", "ftrecipe", *argv], args.repeat, code, output)
            worst[goal] = max(worst.get(goal, 0.0), took / floor)
            print(f"{what}: {took:.2f} s ({took / floor:.2f}x; goal {goal:.2g}x)")
    print(f"worst: run's first error {worst[RUN_GOAL]:.2f}x (goal {RUN_GOAL:g}x), "
          f"validate and --help {worst[VALIDATE_GOAL]:.2f}x (goal {VALIDATE_GOAL:.2g}x)")


if __name__ == "__main__":
    main()
