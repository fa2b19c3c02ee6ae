"""A/B speed benchmark (issue 13): `ftrecipe run` with its speed switches against a hand-written script.

Both arms train the same LLaMA-shaped model (random weights, saved once to a local checkpoint that both
load, so they start from the same weights; no hub), on the same tokens, for one pass over the same
examples, each in its own subprocess (fresh CUDA memory statistics):

- baseline: what a hand-written script does. ``AutoModelForCausalLM.from_pretrained(checkpoint,
  attn_implementation="sdpa")``, PEFT LoRA (or a full fine-tune, or QLoRA: the same checkpoint loaded
  with ``BitsAndBytesConfig(load_in_4bit=True, nf4, double quant, bf16 compute)`` and
  ``prepare_model_for_kbit_training``), each batch padded to its longest example, completion-only
  labels, plain ``torch.optim.AdamW``, bf16 autocast on CUDA, gradient clipping at 1.0, a simple loop.
- ftrecipe: a generated recipe run in-process (``validate_data`` + ``run_recipe``, as
  ``through_runner`` in bench/gpu_compare.py) with the speed switches on: packing; on CUDA loss
  ``fused`` and kernels ``liger`` (``chunked`` / ``none`` without liger-kernel), ``compile`` (not with
  QLoRA or Liger's kernels, which ftrecipe refuses), attention ``sdpa`` (``flash_attention_2`` with flash-attn),
  ``paged-adamw-8bit`` for the 7B shape; on the CPU (``--tiny``) loss ``chunked``, compile only with
  ``--compile``.

Data: "sql-eval lengths, shuffled". Each example of the shipped sample ``recipes/data/sql-eval`` is
measured as ftrecipe's sql-eval format renders it (prompt ``-- schema: {schema}\\n-- question:
{question}\\n-- sql: ``, completion the gold query), at 3.6 characters a token (about what a LLaMA-2
tokenizer gives for SQL and schemas); the lengths are shuffled with a fixed seed (``--tiny`` divides
them by 8) and become random words ``t0 .. t{V-4}`` of a local WordLevel tokenizer of V entries
(pad, eos, unk and the words), so both arms see the same tokens and the real vocabulary size (32000):
the logits are what the chunked loss saves. "The same batch" means the same real tokens per step:
the baseline takes ``--batch`` examples a step, ftrecipe ``round(batch x mean length / max_length)``
packed rows of ``--max-length`` tokens.

Measured per arm: tokens/s (real, non-pad tokens over the steps after ``--warmup`` steps, which hold
compilation, and before the last, whose partial batch a compiled model compiles again; ftrecipe's from
its per-step metrics.jsonl records, timed as each is written), the peak
CUDA memory (``max_memory_allocated`` over the process; null on the CPU), the loss of step 1, and on
CUDA (``--longest``) the longest sequence that trains at batch 1 within ``--budget-gib``
(``set_per_process_memory_fraction``; each of ``--lengths`` in its own subprocess, 3 steps, stopping
at the first that does not fit; ftrecipe without compile, which would warm up again per length). For
QLoRA also ftrecipe's peak at batch 1 x 2048 with gradient checkpointing: without it a 7B's
activations alone take about 17 GiB at 2048 tokens (``ftrecipe plan``), so the 6 GiB goal assumes it.
QLoRA runs on the CPU too (bitsandbytes' CPU backend, fp32 compute): the tiny run exercises the whole
path short of the CUDA-only switches. ``--time-limit`` skips the probes that would overrun it.
Output: one JSON line on stdout (per-arm numbers, ratios, goals met / not met / n/a, checks), a table
on stderr. Exit 0 when both arms ran, 1 when one failed, 3 when this ftrecipe does not accept the
recipe (the JSON names the refused keys).

    python bench/speed_ab.py --shape 1b --mode lora       # TinyLlama 1.1B shape, LoRA (and --mode full)
    python bench/speed_ab.py --shape 7b --mode qlora      # LLaMA-2 7B shape, QLoRA (and --mode lora)
    python bench/speed_ab.py --tiny --mode lora           # a tiny model on the CPU (about 40 s on 2 cores)
    python bench/speed_ab.py --tiny --init scratch        # ftrecipe builds the model (init: scratch + model.tokenizer)
    python bench/speed_ab.py --shape 1b --mode lora --ablation --time-limit 420   # which switch pays

``--ablation`` adds an ftrecipe arm per switch (packing alone, then packing with each other switch of
the set), each against the same baseline: a JSON line per arm on stdout as it ends, and ``ablation`` in
the report. ``--no-compile`` leaves compile out of the set.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SQL_EVAL = ROOT / "recipes" / "data" / "sql-eval"
TEMPLATE = "-- schema: {schema}\n-- question: {question}\n-- sql: "
CHARS_PER_TOKEN = 3.6
SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2
LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
SHAPES: dict[str, dict[str, Any]] = {
    "1b": {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
           "num_key_value_heads": 4, "vocab_size": 32000},
    "7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 32, "vocab_size": 32000},
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 4, "vocab_size": 1000},
}
# examples a step (baseline), examples in the pass, max_length, warm-up steps, length divisor
DEFAULTS = {"1b": (16, 640, 2048, 5, 1), "7b": (8, 128, 2048, 3, 1), "tiny": (8, 64, 128, 2, 8)}
SWITCH_KEYS = ("training.loss", "training.kernels", "training.compile", "training.optimizer",
               "model.attn_implementation", "model.tokenizer", "model.init", "data.packing")
OOM_MARKERS = ("OutOfMemoryError", "out of memory")


# -- the workload: tokenizer, data, checkpoint (parent process) --------------------------------------
def sql_eval_lengths(seed: int, divisor: int) -> list[tuple[int, int]]:
    """(prompt tokens, completion tokens) of every sql-eval example, shuffled; approximated from characters."""
    from ftrecipe_text.sql_eval import load_sql_eval

    pairs = []
    for row in load_sql_eval(SQL_EVAL):
        prompt = TEMPLATE.format(schema=row["schema"], question=row["question"])
        pairs.append((max(1, round(len(prompt) / CHARS_PER_TOKEN / divisor)),
                      max(1, round(len(row["query"]) / CHARS_PER_TOKEN / divisor))))
    random.Random(seed).shuffle(pairs)
    return pairs


def write_tokenizer(directory: Path, vocab_size: int) -> None:
    """A WordLevel tokenizer of exactly ``vocab_size`` entries, saved for ``AutoTokenizer``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [*SPECIALS, *(f"t{i}" for i in range(vocab_size - len(SPECIALS)))]
    tokenizer = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(str(directory))


def write_examples(path: Path, lengths: list[tuple[int, int]], count: int, vocab_size: int, max_length: int,
                   seed: int) -> int:
    """``count`` jsonl examples cycling through ``lengths`` (each fits max_length with its EOS); their tokens."""
    rng, words, total = random.Random(seed), vocab_size - len(SPECIALS), 0
    with path.open("w") as handle:
        for i in range(count):
            prompt, completion = lengths[i % len(lengths)]
            completion = min(completion, max_length - 2)
            prompt = min(prompt, max_length - 1 - completion)
            text = [" ".join(f"t{rng.randrange(words)}" for _ in range(n)) for n in (prompt, completion)]
            handle.write(json.dumps({"prompt": text[0], "completion": text[1]}) + "\n")
            total += prompt + completion + 1
    return total


def model_config(shape: dict[str, Any], positions: int) -> dict[str, Any]:
    return {**shape, "max_position_embeddings": positions, "tie_word_embeddings": False,
            "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": None}


def make_checkpoint(spec: dict[str, Any]) -> dict[str, Any]:
    """Random weights from the config (seeded; on the GPU when there is one), saved with the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    cuda = torch.cuda.is_available()
    torch.manual_seed(spec["seed"])
    with torch.device("cuda" if cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**spec["config"]),
                                                 dtype=torch.bfloat16 if cuda else torch.float32)
    model.save_pretrained(spec["checkpoint"])
    return {"parameters": sum(p.numel() for p in model.parameters())}


# -- the arms (each in its own subprocess) ------------------------------------------------------------
def limit_memory(budget_gib: float | None) -> None:
    import torch

    if budget_gib and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget_gib * 2**30 / total))


def peak_gib() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if torch.cuda.is_available() else None


def baseline_arm(spec: dict[str, Any]) -> dict[str, Any]:
    """The hand-written script: tokenise, pad each batch to its longest, AdamW, autocast, clip."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    limit_memory(spec.get("budget_gib"))
    cuda, mode = torch.cuda.is_available(), spec["mode"]
    device = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(spec["seed"])
    tokenizer = AutoTokenizer.from_pretrained(spec["checkpoint"])
    examples = []
    for line in Path(spec["data"]).read_text().splitlines():
        row = json.loads(line)
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((prompt + completion, [-100] * len(prompt) + completion))

    kwargs: dict[str, Any] = {"attn_implementation": "sdpa",
                              "dtype": torch.bfloat16 if cuda and mode != "full" else torch.float32}
    if mode == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if cuda else torch.float32)
        kwargs["device_map"] = {"": device.index or 0} if cuda else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(spec["checkpoint"], **kwargs)
    if mode in ("lora", "qlora"):
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if mode == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                                 target_modules=LORA["target_modules"], task_type="CAUSAL_LM"))
    if mode != "qlora":  # a 4-bit model is placed by its device_map
        model.to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec["learning_rate"])

    def pad(batch: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        longest = max(len(ids) for ids, _ in batch)
        out = {"input_ids": torch.full((len(batch), longest), tokenizer.pad_token_id),
               "labels": torch.full((len(batch), longest), -100), "attention_mask": torch.zeros(len(batch), longest, dtype=torch.long)}
        for i, (ids, labels) in enumerate(batch):
            out["input_ids"][i, : len(ids)], out["labels"][i, : len(ids)] = torch.tensor(ids), torch.tensor(labels)
            out["attention_mask"][i, : len(ids)] = 1
        return out

    loader = torch.utils.data.DataLoader(examples, batch_size=spec["batch"], shuffle=True, collate_fn=pad,
                                         generator=torch.Generator().manual_seed(spec["seed"]))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)
    losses, tokens, counted, start, end = [], 0, 0, time.perf_counter(), 0.0
    last = len(loader)  # left out of the timing, as ftrecipe's is: a partial batch
    for step, batch in enumerate(loader, 1):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast:
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # a per-step sync, as ftrecipe's per-step log makes one
        real = int(batch["attention_mask"].sum())
        tokens += real
        if step == spec["warmup"]:
            counted, start = 0, time.perf_counter()
        elif spec["warmup"] < step < last:
            counted += real
            end = time.perf_counter()
    return {"steps": len(losses), "tokens": tokens, "first_loss": losses[0], "last_loss": losses[-1],
            "tokens_per_second": counted / (end - start) if counted else None, "peak_memory_gib": peak_gib()}


def ftrecipe_arm(spec: dict[str, Any]) -> dict[str, Any]:
    """`ftrecipe run` in this process; tokens/s from metrics.jsonl records stamped as they are written."""
    import shutil

    import torch

    from ftrecipe.runner import outputs
    from ftrecipe.runner.entry import RunOptions, run_recipe
    from ftrecipe.validation import validate_data

    limit_memory(spec.get("budget_gib"))
    append = outputs.MetricsLog.append
    outputs.MetricsLog.append = lambda self, record: append(self, {**record, "_t": time.perf_counter()})
    out = Path(spec["run_dir"])
    shutil.rmtree(out, ignore_errors=True)  # a kept --workdir holds the last run's folder
    result = validate_data(spec["recipe"], source=str(out.parent / "speed_ab.yaml"))
    if not result.ok:
        raise SystemExit("; ".join(d.text() for d in result.diagnostics))
    code = run_recipe(result, RunOptions(output=str(out), quiet=True, debug=True, argv=["run", "speed_ab.yaml"]))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    if code != 0:  # its message is on stderr, which run_arm reports
        raise SystemExit(f"ftrecipe run exited {code}")
    records = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "train"]
    summary = json.loads((out / "summary.json").read_text())
    applied = json.loads((out / "run.json").read_text()).get("speed")
    # the steps after the warm-up and before the last: its partial batch is a new shape, compiled again
    warm, last = spec["warmup"], records[-1]["step"]
    after = [(a, b) for a, b in zip(records, records[1:]) if a["step"] >= warm and b["step"] < last]
    rate = None
    if after and "tokens_per_second" in after[0][1]:
        rate = sum(b["tokens_per_second"] * (b["_t"] - a["_t"]) for a, b in after) / (after[-1][1]["_t"] - after[0][0]["_t"])
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # a 7B or full-model run leaves gigabytes
    shutil.rmtree(out / "model", ignore_errors=True)
    return {"steps": summary["steps"], "tokens": summary["tokens"], "first_loss": records[0]["loss"],
            "last_loss": records[-1]["loss"], "tokens_per_second": rate, "peak_memory_gib": peak_gib(),
            "switches_applied": applied}


def arm_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    role = spec["role"]
    result = {"checkpoint": make_checkpoint, "baseline": baseline_arm, "ftrecipe": ftrecipe_arm}[role](spec)
    Path(spec["result"]).write_text(json.dumps(result))


def run_arm(spec: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    """One arm in a fresh process; its result, or ``error`` (``oom`` when it ran out of memory)."""
    spec = {**spec, "result": str(work / f"{name}.result.json")}
    Path(spec["result"]).unlink(missing_ok=True)
    (work / f"{name}.spec.json").write_text(json.dumps(spec))
    began = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--arm", str(work / f"{name}.spec.json")],
                          capture_output=True, text=True)
    result_file = Path(spec["result"])
    if done.returncode == 0 and result_file.exists():
        result = json.loads(result_file.read_text())
    else:
        tail = "\n".join(done.stderr.strip().splitlines()[-6:])
        result = {"error": "oom" if any(m in done.stderr for m in OOM_MARKERS) else f"exit {done.returncode}: {tail}"}
    state = "error: " + result["error"].splitlines()[-1] if "error" in result else "done"
    print(f"speed_ab: {name} {state} ({time.monotonic() - began:.0f} s)", file=sys.stderr, flush=True)
    return result


# -- the recipe and the switches ----------------------------------------------------------------------
def speed_switches(cuda: bool, shape: str, mode: str, compile_on_cpu: bool) -> dict[str, Any]:
    """The switches the ftrecipe arm turns on here (see the module docstring)."""
    import importlib.util

    liger = importlib.util.find_spec("liger_kernel") is not None
    flash = importlib.util.find_spec("flash_attn") is not None
    if not cuda:
        return {"packing": True, "loss": "chunked", "kernels": "none", "compile": compile_on_cpu and mode != "qlora",
                "attn_implementation": "sdpa", "optimizer": "adamw"}
    # compile with Liger's kernels fails on CUDA (ftrecipe refuses the pair): compile only without them
    return {"packing": True, "loss": "fused" if liger else "chunked", "kernels": "liger" if liger else "none",
            "compile": mode != "qlora" and not liger, "attn_implementation": "flash_attention_2" if flash else "sdpa",
            "optimizer": "paged-adamw-8bit" if shape == "7b" else "adamw"}


def ablation_variants(switches: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Which switch pays: packing alone (every ftrecipe arm packs, so that all see the baseline's tokens a
    step), then packing with each other switch that the full set turns on, one at a time."""
    plain = {**switches, "loss": "standard", "kernels": "none", "compile": False, "attn_implementation": "sdpa"}
    variants = {"packing": plain}
    for key in ("loss", "kernels", "compile", "attn_implementation"):
        if switches[key] != plain[key]:
            variants[f"packing + {key} {switches[key]}"] = {**plain, key: switches[key]}
    return variants


def ftrecipe_recipe(args: argparse.Namespace, switches: dict[str, Any], data: Path, checkpoint: Path,
                    config: dict[str, Any], rows: int, max_length: int, cuda: bool) -> dict[str, Any]:
    if args.init == "scratch":
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "max_position_embeddings")
        model = {"base": "llama", "init": "scratch", "tokenizer": str(checkpoint), "config": {k: config[k] for k in keys}}
    else:
        model = {"base": str(checkpoint)}
    freeze: dict[str, Any] = {"strategy": args.mode}
    if args.mode != "full":
        freeze["lora"] = dict(LORA)
    if args.mode == "qlora" and not cuda:  # the CPU computes in fp32 (as the baseline's BitsAndBytesConfig there)
        model["quantization"] = {"bits": 4, "compute_dtype": "float32"}
    return {
        "name": f"speed-ab-{args.shape}-{args.mode}",
        "model": {"modality": "causal-lm", **model, "attn_implementation": switches["attn_implementation"]},
        "freeze": freeze,
        "data": {"format": "jsonl", "train": str(data), "eval_fraction": 0, "max_length": max_length,
                 "packing": switches["packing"]},
        "training": {"epochs": 1, "batch_size": rows, "learning_rate": args.learning_rate, "log_every": 1,
                     "scheduler": "constant", "checkpoint_every": 10**6,
                     "gradient_checkpointing": switches.get("gradient_checkpointing", False),
                     "seed": args.seed, "loss": switches["loss"], "kernels": switches["kernels"],
                     "compile": switches["compile"], "optimizer": switches["optimizer"]},
        "hardware": {"accelerator": "cuda" if cuda else "cpu", "precision": "bf16-mixed" if cuda else "fp32"},
        "evaluation": {"before_training": False, "metrics": []},
    }


def refused_keys(raw: dict[str, Any], work: Path) -> dict[str, Any] | None:
    """What this ftrecipe refuses in the recipe (None when it accepts it): the keys, and whether all are switches."""
    from ftrecipe.validation import validate_data

    result = validate_data(raw, source=str(work / "speed_ab.yaml"))
    errors = [d for d in result.diagnostics if d.severity == "error"]
    if not errors:
        return None
    switch = sorted({d.path for d in errors if d.path.startswith(SWITCH_KEYS)})
    return {"error": "this ftrecipe does not accept the recipe", "missing_switches": switch,
            "only_switches": len(switch) == len({d.path for d in errors}), "diagnostics": [d.text() for d in errors]}


# -- results ----------------------------------------------------------------------------------------
def probe_lengths(length: int) -> tuple[int, int]:
    """A probe example of exactly ``length`` tokens: a long prompt, a completion of up to 64 and its EOS."""
    completion = min(64, length // 8)
    return length - completion - 1, completion


class Clock:
    """``--time-limit``: an optional stage (a probe, the QLoRA check) runs only if one like the last fits."""

    def __init__(self, limit: float | None) -> None:
        self.limit, self.start, self.last = limit, time.monotonic(), 0.0

    def allows(self) -> bool:
        return self.limit is None or time.monotonic() - self.start + self.last < self.limit

    def run(self, spec: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
        began = time.monotonic()
        result = run_arm(spec, work, name)
        self.last = time.monotonic() - began
        return result


def longest_fit(spec: dict[str, Any], args: argparse.Namespace, work: Path, name: str, clock: Clock,
                recipe_of: Any = None) -> dict[str, Any]:
    """The longest of ``--lengths`` that trains at batch 1 within the budget (3 steps each), stopping at the
    first that does not fit (``oom``) or fails, or when the time limit is near."""
    longest, tried = 0, {}
    for length in args.lengths:
        if not clock.allows():
            tried[length] = "skipped: time limit"
            break
        data = work / f"probe-{length}.jsonl"
        write_examples(data, [probe_lengths(length)], 3, args.vocab, length, args.seed)
        probe = {**spec, "data": str(data), "batch": 1, "warmup": 0, "budget_gib": args.budget_gib,
                 "run_dir": str(work / f"{name}-probe-{length}")}
        if recipe_of is not None:
            probe["recipe"] = recipe_of(data, length)
        result = clock.run(probe, work, f"{name}-probe-{length}")
        tried[length] = result.get("error", "fits")
        if "error" in result:
            break
        longest = length
    return {"longest_seq": longest or None, "longest_probe": tried}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "met" if ok else "not met"


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "liger-kernel", "flash-attn", "ftrecipe"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def table(report: dict[str, Any]) -> str:
    def num(value: Any, spec: str = ",.0f") -> str:
        return "-" if value is None else format(value, spec)

    lines = [f"speed_ab {report['shape']} {report['mode']} on {report['device']}",
             f"  {'arm':10s} {'tokens/s':>12s} {'peak GiB':>9s} {'longest':>8s} {'loss@1':>8s} {'steps':>6s} {'tokens':>10s}"]
    for arm in ("baseline", "ftrecipe"):
        r = report[arm]
        if "error" in r:
            lines.append(f"  {arm:10s} FAILED: {r['error']}")
            continue
        lines.append(f"  {arm:10s} {num(r.get('tokens_per_second')):>12s} {num(r.get('peak_memory_gib'), '.2f'):>9s} "
                     f"{num(r.get('longest_seq')):>8s} {num(r.get('first_loss'), '.3f'):>8s} {r['steps']:>6d} {r['tokens']:>10,d}")
    ratios = report["ratios"]
    lines.append(f"  ratios: tokens/s {num(ratios['tokens_per_second_ratio'], '.2f')}x, peak memory saving "
                 f"{num(ratios['peak_memory_saving'], '.0%')}, longest sequence {num(ratios['longest_seq_ratio'], '.1f')}x")
    lines += [f"  ftrecipe {key.replace('_', ' ')}: {value}" for key, value in report["ftrecipe"].items() if key.startswith("b1x")]
    lines += [f"  goal {goal}: {state}" for goal, state in report["goals"].items()]
    return "\n".join(lines)


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the shape, and the data in the work folder."""
    batch, examples, max_length, warmup, divisor = DEFAULTS[args.shape]
    args.batch, args.examples = args.batch or batch, args.examples or examples
    args.max_length, args.warmup = args.max_length or max_length, warmup if args.warmup is None else args.warmup
    args.vocab, args.divisor = SHAPES[args.shape]["vocab_size"], divisor
    work = Path(args.workdir or tempfile.mkdtemp(prefix="speed-ab-"))
    work.mkdir(parents=True, exist_ok=True)
    config = model_config(SHAPES[args.shape], max([args.max_length, *args.lengths]))
    data = work / "train.jsonl"
    tokens = write_examples(data, sql_eval_lengths(args.seed, divisor), args.examples, args.vocab, args.max_length, args.seed)
    rows = max(1, round(args.batch * tokens / args.examples / args.max_length))
    return {"work": work, "config": config, "data": data, "tokens": tokens, "checkpoint": work / "model", "rows": rows}


def ensure_checkpoint(args: argparse.Namespace, made: dict[str, Any], cuda: bool) -> None:
    """The random-weight checkpoint and its tokenizer, unless the work folder has one of this config and seed."""
    checkpoint, stamp = made["checkpoint"], made["work"] / "checkpoint.json"
    wanted = {"config": made["config"], "seed": args.seed}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return
    write_tokenizer(checkpoint, args.vocab)
    spec = {"role": "checkpoint", "config": made["config"], "seed": args.seed, "checkpoint": str(checkpoint)}
    result = run_arm(spec, made["work"], "checkpoint") if cuda else make_checkpoint(spec)  # a GPU builds a 7B in seconds
    if "error" in result:
        raise SystemExit(f"speed_ab: making the checkpoint failed: {result['error']}")
    stamp.write_text(json.dumps(wanted))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arm", help=argparse.SUPPRESS)
    parser.add_argument("--shape", choices=("1b", "7b"), default="1b")
    parser.add_argument("--mode", choices=("full", "lora", "qlora"), default="lora")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and short sequences: check the script on a CPU")
    parser.add_argument("--init", choices=("checkpoint", "scratch"), default="checkpoint",
                        help="ftrecipe loads the saved random checkpoint, or builds the model itself (init: scratch)")
    parser.add_argument("--batch", type=int, help="baseline examples a step (ftrecipe: the same tokens in packed rows)")
    parser.add_argument("--examples", type=int, help="examples in the one pass both arms make")
    parser.add_argument("--max-length", type=int, help="ftrecipe's packed row length (data.max_length)")
    parser.add_argument("--warmup", type=int, help="steps left out of tokens/s (compilation)")
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--compile", action="store_true", help="on the CPU too (slow to warm up)")
    parser.add_argument("--no-compile", action="store_true", help="leave compile out of the switch set (CUDA too)")
    parser.add_argument("--ablation", action="store_true",
                        help="also each switch alone (with packing) against the same baseline, a JSON line each as it ends")
    parser.add_argument("--budget-gib", type=float, default=24.0)
    parser.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")], default=[1024, 2048, 4096, 8192, 16384])
    parser.add_argument("--longest", choices=("auto", "on", "off"), default="auto",
                        help="the longest-sequence probes: auto = on CUDA only")
    parser.add_argument("--time-limit", type=float, help="seconds; probes and checks that would pass it are skipped")
    parser.add_argument("--workdir", help="keep the tokenizer, data and checkpoint here (reused for the same config)")
    args = parser.parse_args()
    if args.arm:
        arm_main(args.arm)
        return 0
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cuda = torch.cuda.is_available()
    clock = Clock(args.time_limit)
    if args.tiny:
        args.shape = "tiny"
    switches = speed_switches(cuda, args.shape, args.mode, args.compile)
    if args.no_compile:
        switches["compile"] = False
    made = prepare(args)
    work, checkpoint, config = made["work"], made["checkpoint"], made["config"]

    def recipe(data: Path, rows: int, length: int, switched: dict[str, Any]) -> dict[str, Any]:
        return ftrecipe_recipe(args, switched, data, checkpoint, config, rows, length, cuda)

    raw = recipe(made["data"], made["rows"], args.max_length, switches)
    refused = refused_keys(raw, work)
    if refused is not None:
        print(json.dumps(refused))
        print("\n".join(refused["diagnostics"]), file=sys.stderr)
        return 3
    print(f"speed_ab: ftrecipe switches {json.dumps(switches)}; baseline: sdpa, padded batches, AdamW", file=sys.stderr)
    ensure_checkpoint(args, made, cuda)

    common = {"mode": args.mode, "seed": args.seed, "checkpoint": str(checkpoint), "learning_rate": args.learning_rate}
    base_spec = {**common, "role": "baseline", "data": str(made["data"]), "batch": args.batch, "warmup": args.warmup}
    ours_spec = {**common, "role": "ftrecipe", "recipe": raw, "warmup": args.warmup, "run_dir": str(work / "ftrecipe-run")}
    baseline, ours = run_arm(base_spec, work, "baseline"), clock.run(ours_spec, work, "ftrecipe")

    # at batch 1 x length, one example a row, without compile (it would warm up again for every length)
    def probe_recipe(data: Path, length: int) -> dict[str, Any]:
        return recipe(data, 1, length, {**switches, "compile": False})

    if args.longest == "on" or (args.longest == "auto" and cuda):
        for arm, spec, name, recipe_of in ((baseline, base_spec, "baseline", None), (ours, ours_spec, "ftrecipe", probe_recipe)):
            if "error" not in arm:
                arm.update(longest_fit(spec, args, work, name, clock, recipe_of))
    qlora_check = None
    if args.mode == "qlora" and "error" not in ours and (cuda or args.longest == "on"):
        # ftrecipe's peak at batch 1 x 2048 (the tiny: x max_length), with gradient checkpointing: without it
        # a 7B's activations alone take about 17 GiB at 2048 tokens (`ftrecipe plan`), whatever the switches
        length = args.max_length if args.tiny else 2048
        key = f"b1x{length}_checkpointed_peak_memory_gib"
        if clock.allows():
            probe_data = work / f"b1x{length}.jsonl"
            write_examples(probe_data, [probe_lengths(length)], 3, args.vocab, length, args.seed)
            check_recipe = recipe(probe_data, 1, length, {**switches, "compile": False, "gradient_checkpointing": True})
            check = clock.run({**ours_spec, "recipe": check_recipe, "warmup": 0, "run_dir": str(work / "b1-check")},
                              work, "b1-check")
            qlora_check = check.get("peak_memory_gib")
            ours[key] = check.get("error", qlora_check)
        else:
            ours[key] = "skipped: time limit"

    report = summarise(args, cuda, switches, made, baseline, ours, qlora_check)
    if args.ablation:
        report["ablation"] = ablation(args, switches, made, recipe, ours_spec, baseline, ours, clock)
    print(json.dumps(report))
    print(table(report), file=sys.stderr)
    return 0 if report["checks"]["both_ran"] else 1


def ablation(args: argparse.Namespace, switches: dict[str, Any], made: dict[str, Any], recipe: Any,
             ours_spec: dict[str, Any], baseline: dict[str, Any], ours: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Each variant of :func:`ablation_variants` as an ftrecipe arm (the full set is the main arm), its
    tokens/s and peak memory as ratios to the baseline; printed as each ends, skipped past --time-limit."""
    work, results = made["work"], {}

    def record(name: str, arm: dict[str, Any]) -> None:
        if "error" in arm or "error" in baseline:
            results[name] = {"error": arm.get("error") or "the baseline failed"}
        else:
            peak_b, peak_o = baseline.get("peak_memory_gib"), arm.get("peak_memory_gib")
            results[name] = {"tokens_per_second": arm["tokens_per_second"], "peak_memory_gib": peak_o,
                             "tokens_per_second_ratio": ratio(arm["tokens_per_second"], baseline["tokens_per_second"]),
                             "peak_memory_saving": round(1 - peak_o / peak_b, 3) if peak_b and peak_o else None}
        print(json.dumps({"ablation": name, **results[name]}), flush=True)

    for name, switched in ablation_variants(switches).items():
        if switched == switches:
            continue  # the full set with a single switch on is the main arm
        if not clock.allows():
            results[name] = {"skipped": "time limit"}
            continue
        slug = "".join(c if c.isalnum() else "-" for c in name)
        spec = {**ours_spec, "recipe": recipe(made["data"], made["rows"], args.max_length, switched),
                "run_dir": str(work / f"ablation-{slug}")}
        record(name, clock.run(spec, work, f"ablation-{slug}"))
    record("all", ours)
    return results


def summarise(args: argparse.Namespace, cuda: bool, switches: dict[str, Any], made: dict[str, Any],
              baseline: dict[str, Any], ours: dict[str, Any], qlora_check: float | None) -> dict[str, Any]:
    """The report: both arms, the ratios ftrecipe / baseline, the goals (measured on CUDA at real sizes only)."""
    import torch

    both = "error" not in baseline and "error" not in ours

    def get(arm: dict[str, Any], key: str) -> Any:
        return arm.get(key) if both else None

    peak_b, peak_o = get(baseline, "peak_memory_gib"), get(ours, "peak_memory_gib")
    ratios = {"tokens_per_second_ratio": ratio(get(ours, "tokens_per_second"), get(baseline, "tokens_per_second")),
              "peak_memory_saving": round(1 - peak_o / peak_b, 3) if peak_b and peak_o else None,
              "longest_seq_ratio": ratio(get(ours, "longest_seq"), get(baseline, "longest_seq"))}
    real = cuda and not args.tiny
    tps, saving = ratios["tokens_per_second_ratio"], ratios["peak_memory_saving"]
    goals = {
        "tokens_per_second_ratio >= 1.5": verdict(tps >= 1.5 if real and tps is not None else None),
        "LoRA peak_memory_saving >= 0.40": verdict(saving >= 0.40 if real and args.mode != "full" and saving is not None
                                                   else None),
        "7B QLoRA b1x2048 (gradient checkpointing) peak < 6 GiB": verdict(qlora_check < 6 if real and args.shape == "7b" and args.mode == "qlora"
                                                  and qlora_check is not None else None),
    }
    checks = {"both_ran": both, "same_tokens": both and baseline["tokens"] == ours["tokens"],
              "first_loss_close": both and math.isclose(baseline["first_loss"], ours["first_loss"], rel_tol=0.05)}
    return {"bench": "speed_ab", "shape": args.shape, "mode": args.mode, "init": args.init,
            "device": torch.cuda.get_device_name(0) if cuda else "cpu", "date": time.strftime("%Y-%m-%d"),
            "versions": versions(), "switches": switches,
            "data": {"examples": args.examples, "tokens": made["tokens"], "max_length": args.max_length,
                     "vocab": args.vocab, "chars_per_token": CHARS_PER_TOKEN, "length_divisor": args.divisor},
            "batch": {"baseline_examples": args.batch, "ftrecipe_rows": made["rows"], "warmup_steps": args.warmup,
                      "budget_gib": args.budget_gib if cuda else None},
            "baseline": baseline, "ftrecipe": ours, "ratios": ratios, "goals": goals, "checks": checks}


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
