"""How long `ftrecipe plan` takes on each shipped recipe, as a ratio to `import torch, transformers`.

Goal (issue 24): every shipped recipe within 1.5x the floor. The floor is measured again beside each
recipe (this machine's speed drifts by a factor of two within minutes, and one slow floor made every
ratio look good), and each ratio is to the floor measured beside it. Each plan runs in a fresh process,
as a user runs it, three ways:

- cold: an empty plan cache (the first plan of a recipe, or after its model, data or libraries changed):
  the libraries' imports, a meta build and two traced forwards;
- warm: the same command again (the plan cache answers: the everyday case of editing a batch size or
  a learning rate, or reviewing a pull request that changed one);
- all: every shipped recipe in one `ftrecipe plan` process, cold, against the sum of the cold plans
  (the imports are paid once);
- diff: `ftrecipe diff` of the two shipped QLoRA recipes, cold, against the two cold plans it makes
  (goal: at most one plan more than a plan);
- watched: `ftrecipe plan RECIPE --watch --no-cache`, from saving an edit of the recipe to its new plan
  printed (the poll and the settling wait included): the model measured afresh in a process that has
  its imports, as after an edit of the model's structure that no cache can answer;
- libraries: the model libraries' modules the cold plan loaded (torch's, Transformers', PEFT's,
  Diffusers', ...), imported alone in a fresh process, in the plan's order: what no plan of that recipe
  can avoid. A cold plan's ratio to it is the cost of ftrecipe's own work (its imports, validation, the
  meta build and the traces); ``import torch, transformers`` does not import a model class, so a cold
  plan of a Transformers model cannot come near 1.5x of that floor.

    python bench/plan_speed.py [--repeat 2] [RECIPE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.5
MODEL_LIBRARIES = ("torch", "torchvision", "transformers", "tokenizers", "safetensors", "huggingface_hub", "peft",
                   "accelerate", "bitsandbytes", "diffusers", "ultralytics", "liger_kernel", "evaluate", "datasets",
                   "soundfile")
"""Top-level packages whose modules count as the libraries' imports (with whatever they import in turn)."""
RECORDING = """
import atexit, json, runpy, sys
target = sys.argv.pop(1)
atexit.register(lambda: open(target, "w").write(json.dumps([[name, module is not None] for name, module in sys.modules.items()])))
sys.argv[0] = "ftrecipe"
runpy.run_module("ftrecipe", run_name="__main__", alter_sys=True)
"""
"""Runs ``ftrecipe`` as ``python -m ftrecipe`` does and writes the names in ``sys.modules`` (in the order
their imports began) when it exits, each with whether it is a module or a None that left a package out
(``ftrecipe.libraries.leave_out``)."""
IMPORTING = """
import importlib, json, sys
names = json.load(open(sys.argv[1]))
for name, present in names:
    if not present:
        sys.modules[name] = None
for name, present in names:
    if present and name not in sys.modules:
        try:
            importlib.import_module(name)
        except Exception:
            pass
"""


def library_modules(names: list[list[Any]]) -> list[list[Any]]:
    """The model libraries' entries of a recording (``[name, present]``), in its order."""
    return [[name, present] for name, present in names if name.partition(".")[0] in MODEL_LIBRARIES]


def recorded(command: list[str], record: Path) -> list[str]:
    """``python -m ftrecipe`` with ``command``'s arguments, run through :data:`RECORDING` into ``record``."""
    return [sys.executable, "-c", RECORDING, str(record), *command[3:]]


def libraries_alone(record: Path, folder: Path, repeat: int) -> float:
    """Seconds to import the model libraries' modules named in ``record`` and nothing else."""
    modules = folder / f"{record.stem}.libraries.json"
    modules.write_text(json.dumps(library_modules(json.loads(record.read_text()))))
    return seconds([sys.executable, "-c", IMPORTING, str(modules)], repeat)


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


def watched(recipe: str) -> float:
    """Seconds from saving an edit of ``recipe`` to its new plan printed by ``ftrecipe plan --watch --no-cache``
    (a copy beside the recipe, so that its relative paths hold, removed afterwards)."""
    original = ROOT / recipe
    copy = original.with_name(f".watched-{original.name}")
    shutil.copyfile(original, copy)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "ftrecipe", "plan", str(copy), "--watch", "--no-cache"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        def wait_for(mark: str) -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                if line.startswith(mark):
                    if " planned in " not in line:
                        raise SystemExit(f"{recipe}: the watched plan failed: {line.strip()}")
                    return
            raise SystemExit(f"{recipe}: the watch ended early (exit {process.wait()})")

        wait_for("-- plan 1 ")
        start = time.perf_counter()
        with copy.open("a") as edited:
            edited.write("\n# edited\n")
        wait_for("-- plan 2 ")
        return time.perf_counter() - start
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        copy.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("recipes", nargs="*", help="the recipes to plan (default: every shipped recipe)")
    args = parser.parse_args()
    floor_command = [sys.executable, "-c", "import torch, transformers"]
    floors = [seconds(floor_command, args.repeat)]
    print(f"floor: import torch, transformers: {floors[0]:.2f} s (measured again beside each recipe); goal: plan within {GOAL:g}x")
    recipes = args.recipes or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "recipes").rglob("*.yaml")
                                     if "data" not in p.relative_to(ROOT / "recipes").parts)
    plan = [sys.executable, "-m", "ftrecipe", "plan"]
    cold_total, worst_cold, worst_warm, worst_work, worst_watched = 0.0, 0.0, 0.0, 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="plan-speed-") as folder:
        cache = Path(folder) / "cache"
        for number, recipe in enumerate(recipes):
            record = Path(folder) / f"{number}-{Path(recipe).stem}.json"  # two folders may hold one name
            floor = seconds(floor_command, args.repeat)
            floors.append(floor)
            cold = seconds(recorded([*plan, recipe], record), args.repeat, cache, fresh=True)
            warm = seconds([*plan, recipe], args.repeat, cache)
            libraries = libraries_alone(record, Path(folder), args.repeat)
            edit = min(watched(recipe) for _ in range(args.repeat))
            cold_total += cold
            worst_cold, worst_warm = max(worst_cold, cold / floor), max(worst_warm, warm / floor)
            worst_work, worst_watched = max(worst_work, cold / libraries), max(worst_watched, edit / floor)
            print(f"{recipe}: floor {floor:.2f} s; cold {cold:.2f} s ({cold / floor:.2f}x), warm {warm:.2f} s ({warm / floor:.2f}x), "
                  f"watched edit {edit:.2f} s ({edit / floor:.2f}x); "
                  f"its libraries' imports alone {libraries:.2f} s ({libraries / floor:.2f}x): cold is {cold / libraries:.2f}x them")
        together = seconds([*plan, *recipes], 1, cache, fresh=True)
        pair = ["recipes/llama2-7b-sql-qlora.yaml", "recipes/falcon-40b-qlora.yaml"]
        diff = seconds([sys.executable, "-m", "ftrecipe", "diff", *pair], args.repeat, cache, fresh=True)
        plans = [seconds([*plan, recipe], args.repeat, cache, fresh=True) for recipe in pair]
    floor = min(floors)
    print(f"floors measured: {floor:.2f} to {max(floors):.2f} s")
    print(f"all {len(recipes)} recipes in one process, cold: {together:.2f} s ({together / floor:.2f}x the lowest floor; "
          f"{together / cold_total:.2f}x the {cold_total:.2f} s of separate cold plans)")
    print(f"diff of the two QLoRA recipes, cold: {diff:.2f} s; its plans alone: {plans[0]:.2f} s and {plans[1]:.2f} s "
          f"(goal: at most {max(plans) + min(plans):.2f} s, one plan more than a plan)")
    print(f"worst ratio to the floor: cold {worst_cold:.2f}x, warm {worst_warm:.2f}x, watched edit measured afresh "
          f"{worst_watched:.2f}x (goal {GOAL:g}x)")
    print(f"worst cold plan against its own libraries' imports: {worst_work:.2f}x")


if __name__ == "__main__":
    main()
