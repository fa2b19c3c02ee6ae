"""How good is `ftrecipe plan`'s memory estimate? The estimate next to a real run's peak, per configuration.

For each configuration the issue names (full fine-tuning with fp32 master weights under bf16 mixed
precision and in pure bf16, LoRA, QLoRA, Whisper with a frozen encoder, DreamBooth LoRA, YOLO) a
recipe is written with models built from configs (random weights: memory does not care), and
``ftrecipe plan RECIPE --probe N`` runs N real steps through `ftrecipe run`'s machinery. Printed per
configuration: the estimated peak (the plan's expected total less the CUDA context, which
``torch.cuda.max_memory_allocated`` does not see), the measured peak of the steps after the first,
and the error; then the static part (weights, gradients, optimizer states) against the bytes measured.
The goal is an error within 15% for every configuration.

    python bench/plan_accuracy.py            # on a CUDA machine (about 4 minutes on one H200; 60 s a configuration at most)
    python bench/plan_accuracy.py --tiny     # the same configurations, tiny, on the CPU: static part only
    python bench/plan_accuracy.py --only qlora,whisper --limit 90   # some of them
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

# (name, recipe body, extra --set): {size} blocks are filled per mode
LLAMA_SIZE = {"cuda": "{hidden_size: 2048, intermediate_size: 5504, num_hidden_layers: 12, num_attention_heads: 16, "
                      "num_key_value_heads: 16}", "tiny": "{hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, "
                                                          "num_attention_heads: 4, num_key_value_heads: 4}"}
LENGTH = {"cuda": 1024, "tiny": 64}


def llama(strategy: str, extra: str = "") -> str:
    return f"""model:
  modality: causal-lm
  base: llama
  init: scratch
  config: {{size}}
{extra}freeze:
  strategy: {strategy}
data:
  format: synthetic
  train_size: 400
  eval_size: 8
  max_length: {{length}}
  packing: true
training:
  batch_size: 4
  learning_rate: 1.0e-4
hardware:
  precision: bf16-mixed
"""


WHISPER = """model:
  modality: whisper
  base: openai/whisper-tiny
  init: scratch
  config: {d_model: 256, encoder_layers: 4, decoder_layers: 4, ffn_dim: 1024, chunk_length: 30}
  language: en
freeze:
  strategy: partial
  freeze: [model.encoder.*]
data:
  format: synthetic
  train_size: 200
  eval_size: 8
training:
  batch_size: 16
  learning_rate: 1.0e-4
hardware:
  precision: bf16-mixed
"""

DREAMBOOTH = """model:
  modality: stable-diffusion
  base: {base}
freeze:
  strategy: lora
data:
  format: synthetic-subject
  instance_images: 8
  instance_prompt: a photo of sks toy
  class_prompt: a photo of toy
  num_class_images: 8
  resolution: {resolution}
training:
  batch_size: 2
  learning_rate: 1.0e-4
  prior_loss_weight: 1.0
hardware:
  precision: bf16-mixed
evaluation:
  prompts: [a photo of sks toy]
  images_per_prompt: 1
  num_inference_steps: 2
"""

YOLO = """model:
  modality: yolo
  base: yolo11n.yaml
  init: scratch
  image_size: {image_size}
head:
  mode: replace
freeze:
  strategy: full
data:
  format: synthetic
  train_size: 64
  eval_size: 8
  image_size: {image_size}
training:
  epochs: 1
  batch_size: 16
  nominal_batch: 16
  learning_rate: 0.001
"""

CONFIGURATIONS = [
    ("full, fp32 master weights, bf16 mixed", llama("full"), []),
    ("full, pure bf16", llama("full"), ["model.dtype=bfloat16"]),
    ("LoRA", llama("lora"), []),
    ("QLoRA", llama("qlora"), []),
    ("Whisper, frozen encoder", WHISPER, []),
    ("DreamBooth LoRA", DREAMBOOTH, []),
    ("YOLO", YOLO, []),
]


def write_recipe(folder: Path, index: int, body: str, mode: str, sd_base: Path) -> Path:
    text = (body.replace("{size}", LLAMA_SIZE[mode]).replace("{length}", str(LENGTH[mode]))
            .replace("{base}", str(sd_base)).replace("{resolution}", "512" if mode == "cuda" else "64")
            .replace("{image_size}", "640" if mode == "cuda" else "128"))
    path = folder / f"config-{index}.yaml"
    path.write_text(text)
    return path


def sd_base(folder: Path, mode: str) -> Path:
    """An SD 1.5-shaped pipeline (random weights) on CUDA, the tiny one on the CPU."""
    sys.path.insert(0, str(Path(__file__).parent))
    from sd_dreambooth import sd15_shaped_pipeline, tiny_pipeline

    return sd15_shaped_pipeline(folder / "sd15") if mode == "cuda" else tiny_pipeline(folder / "sd-tiny")


def probe(recipe: Path, sets: list[str], steps: int, limit: float) -> dict:
    args = [a for s in sets for a in ("--set", s)]  # on a CPU the probe itself runs there (fp32 where bf16 is not asked)
    try:
        done = subprocess.run([sys.executable, "-m", "ftrecipe", "plan", str(recipe), *args, "--probe", str(steps),
                               "--format", "json"], capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {limit:.0f} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout)["memory"]["probe"]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU: checks the static part only")
    parser.add_argument("--steps", type=int, default=3, help="real steps per configuration (the peak is of those after the first)")
    parser.add_argument("--only", default=None,
                        help="comma-separated: the configurations whose name contains one of these (e.g. 'lora,yolo')")
    parser.add_argument("--limit", type=float, default=None,
                        help="seconds per configuration before it is reported as timed out (default 60 on CUDA, 600 tiny)")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "cuda"
    limit = args.limit or (600.0 if args.tiny else 60.0)
    wanted = [part.strip().lower() for part in args.only.split(",") if part.strip()] if args.only else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="plan-accuracy-") as tmp:
        folder = Path(tmp)
        base = sd_base(folder, mode)
        for index, (name, body, sets) in enumerate(CONFIGURATIONS):
            if wanted and not any(part in name.lower() for part in wanted):
                continue
            result = probe(write_recipe(folder, index, body, mode, base), sets, args.steps, limit)
            row = {"configuration": name, **result}
            estimated, measured = result.get("estimated", {}), result.get("measured", {})
            if "peak_allocated" in measured:
                row["peak_error"] = round(estimated["peak_allocated"] / measured["peak_allocated"] - 1, 4)
            static = ("weights", "gradients", "optimizer")
            if measured:
                row["static_exact"] = all(estimated[k] == measured[k] for k in static)
            rows.append(row)
            print(json.dumps(row), flush=True)
    errors = [abs(r["peak_error"]) for r in rows if "peak_error" in r]
    if errors:
        print(f"peak error: worst {max(errors):.1%}, mean {sum(errors) / len(errors):.1%} over {len(errors)} configurations "
              f"(goal: within 15%)")
    print(f"static part exact in {sum(bool(r.get('static_exact')) for r in rows)} of {len(rows)} configurations")
    return rows


if __name__ == "__main__":
    main()
