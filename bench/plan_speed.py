"""How long `ftrecipe plan` takes on each shipped recipe, as a ratio to `import torch, transformers`.

Goal (issue 24): every shipped recipe within 1.5x the floor. Each plan runs in a fresh process, as a
user runs it, three ways:

- cold: an empty plan cache (the first plan of a recipe, or after its model, data or libraries changed):
  the libraries' imports, a meta build and two traced forwards;
- warm: the same command again (the plan cache answers: the everyday case of editing a batch size or
  a learning rate, or reviewing a pull request that changed one);
- all: every shipped recipe in one `ftrecipe plan` process, cold, against the sum of the cold plans
  (the imports are paid once);
- diff: `ftrecipe diff` of the two shipped QLoRA recipes, cold, against the two cold plans it makes
  (goal: at most one plan more than a plan).

    python bench/plan_speed.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.5


def seconds(command: list[str], repeat: int, cache: Path | None = None, *, fresh: bool = False) -> float:
    """The best of ``repeat`` runs; ``fresh`` empties the plan cache before each."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if cache is not None:
        env["FTRECIPE_CACHE_DIR"] = str(cache)
    best = float("inf")
    for _ in range(repeat):
        if fresh and cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    floor = seconds([sys.executable, "-c", "import torch, transformers"], args.repeat)
    print(f"floor: import torch, transformers: {floor:.2f} s; goal: plan within {GOAL:g}x ({GOAL * floor:.2f} s)")
    recipes = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "recipes").rglob("*.yaml")
                     if "data" not in p.relative_to(ROOT / "recipes").parts)
    plan = [sys.executable, "-m", "ftrecipe", "plan"]
    cold_total, worst_cold, worst_warm = 0.0, 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="plan-speed-") as folder:
        cache = Path(folder) / "cache"
        for recipe in recipes:
            cold = seconds([*plan, recipe], args.repeat, cache, fresh=True)
            warm = seconds([*plan, recipe], args.repeat, cache)
            cold_total += cold
            worst_cold, worst_warm = max(worst_cold, cold / floor), max(worst_warm, warm / floor)
            print(f"{recipe}: cold {cold:.2f} s ({cold / floor:.2f}x), warm {warm:.2f} s ({warm / floor:.2f}x)")
        together = seconds([*plan, *recipes], 1, cache, fresh=True)
        pair = ["recipes/llama2-7b-sql-qlora.yaml", "recipes/falcon-40b-qlora.yaml"]
        diff = seconds([sys.executable, "-m", "ftrecipe", "diff", *pair], args.repeat, cache, fresh=True)
        plans = [seconds([*plan, recipe], args.repeat, cache, fresh=True) for recipe in pair]
    print(f"all {len(recipes)} recipes in one process, cold: {together:.2f} s ({together / floor:.2f}x the floor; "
          f"{together / cold_total:.2f}x the {cold_total:.2f} s of separate cold plans)")
    print(f"diff of the two QLoRA recipes, cold: {diff:.2f} s; its plans alone: {plans[0]:.2f} s and {plans[1]:.2f} s "
          f"(goal: at most {max(plans) + min(plans):.2f} s, one plan more than a plan)")
    print(f"worst ratio to the floor: cold {worst_cold:.2f}x, warm {worst_warm:.2f}x (goal {GOAL:g}x)")


if __name__ == "__main__":
    main()
