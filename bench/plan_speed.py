"""How long `ftrecipe plan` takes on each shipped recipe, as a user runs it (goal: under 5 s each).

Each plan runs in a fresh process, so the time includes importing torch, transformers (and PEFT,
Diffusers or Ultralytics where the recipe needs them): the floor, measured first, is what importing
those libraries alone costs on this machine.

    python bench/plan_speed.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 5.0


def seconds(command: list[str], repeat: int) -> float:
    """The best of ``repeat`` runs (the first also warms the file cache)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    floor = seconds([sys.executable, "-c", "import torch, transformers, peft"], args.repeat)
    print(f"import floor (torch, transformers, peft): {floor:.2f} s")
    recipes = sorted(p for p in (ROOT / "recipes").rglob("*.yaml") if "data" not in p.relative_to(ROOT / "recipes").parts)
    worst = 0.0
    for recipe in recipes:
        took = seconds([sys.executable, "-m", "ftrecipe", "plan", str(recipe.relative_to(ROOT))], args.repeat)
        worst = max(worst, took)
        print(f"{recipe.relative_to(ROOT)}: {took:.2f} s (ratio to the {GOAL:g} s goal: {took / GOAL:.2f}; "
              f"beyond the import floor: {took - floor:.2f} s)")
    print(f"worst: {worst:.2f} s, ratio {worst / GOAL:.2f}")


if __name__ == "__main__":
    main()
