"""GPU benchmark: `ftrecipe run` against a plain PyTorch loop on the same model, data and optimizer.

Both run in this one process, one after the other, on randomly initialised models of real shapes
(no download): throughput, model-FLOPs utilisation (MFU) and peak memory, and the ratio
runner / plain (goal: 0.97x or better).

    python bench/gpu_compare.py llama-1b --mode full      # LLaMA 1.1B shape (TinyLlama), full fine-tune
    python bench/gpu_compare.py llama-1b --mode lora
    python bench/gpu_compare.py llama-7b --mode qlora     # LLaMA-2 7B shape, 4-bit base
    python bench/gpu_compare.py whisper-small --mode full
    python bench/gpu_compare.py whisper-small --mode encoder-frozen
    python bench/gpu_compare.py llama-1b --tiny           # a few-second CPU sanity run of the script itself

MFU counts 6 x trainable-path parameters x tokens (2 for the forward, 4 for the backward) against
``--peak-tflops`` (default: 989 dense bf16 for H100/H200 SXM).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import send_to_device

SHAPES: dict[str, dict[str, Any]] = {
    "llama-1b": {"modality": "causal-lm", "base": "llama", "config": {
        "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
        "num_key_value_heads": 4, "max_position_embeddings": 2048}},
    "llama-7b": {"modality": "causal-lm", "base": "llama", "config": {
        "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 32, "max_position_embeddings": 2048}},
    "whisper-small": {"modality": "whisper", "base": "openai/whisper-small", "config": {
        "d_model": 768, "encoder_layers": 12, "decoder_layers": 12, "attention_heads": 12, "ffn_dim": 3072,
        "chunk_length": 30}},
}
TINY = {
    "causal-lm": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "num_key_value_heads": 4, "max_position_embeddings": 256},
    "whisper": {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "attention_heads": 2, "ffn_dim": 64, "chunk_length": 2},
}
FREEZE = {
    "full": {"strategy": "full"},
    "lora": {"strategy": "lora", "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"}},
    "qlora": {"strategy": "qlora", "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"}},
    "encoder-frozen": {"strategy": "partial", "freeze": ["model.encoder.*"]},
}


def recipe_data(shape: str, mode: str, steps: int, batch: int, seq_len: int, tiny: bool) -> dict[str, Any]:
    spec = SHAPES[shape]
    cuda = torch.cuda.is_available()
    data: dict[str, Any]
    if spec["modality"] == "causal-lm":
        data = {"format": "synthetic", "train_size": max(256, steps * batch * 8), "eval_size": 1, "max_length": seq_len}
    else:
        data = {"format": "synthetic", "train_size": max(64, steps * batch), "eval_size": 1}
    model_extra = {} if cuda or mode != "qlora" else {"quantization": {"bits": 4, "compute_dtype": "float32"}}
    return {
        "name": f"bench-{shape}-{mode}",
        "model": {"modality": spec["modality"], "base": spec["base"], "init": "scratch",
                  "config": TINY[spec["modality"]] if tiny else spec["config"], **model_extra},
        "freeze": FREEZE[mode],
        "data": data,
        "training": {"max_steps": steps, "batch_size": batch, "learning_rate": 1e-5, "log_every": max(1, steps // 4),
                     "scheduler": "constant", "checkpoint_every": 10**6, "gradient_checkpointing": False},
        "hardware": {"accelerator": "cuda" if cuda else "cpu", "precision": "bf16-mixed" if cuda else "fp32",
                     "dataloader_workers": 4 if cuda else 0},
        "evaluation": {"before_training": False, "metrics": []},
    }


def through_runner(raw: dict[str, Any], out: Path) -> dict[str, Any]:
    """`ftrecipe run` in this process (its own validation, task, loop, checkpoint and save)."""
    from ftrecipe.runner.entry import RunOptions, run_recipe
    from ftrecipe.validation import validate_data

    result = validate_data(raw, source=str(out / "bench.yaml"))
    assert result.ok, [d.text() for d in result.diagnostics]
    args = RunOptions(output=str(out), quiet=True, debug=True, argv=["run", "bench.yaml"])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    assert run_recipe(result, args) == 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"][1:]  # the first window holds warm-up
    rate_key = "tokens_per_second" if "tokens_per_second" in train[-1] else "samples_per_second"
    return {"rate": sum(r[rate_key] for r in train) / len(train), "unit": rate_key,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None}


def plain_loop(raw: dict[str, Any], steps: int) -> dict[str, Any]:
    """The same task's model and batches, trained by a hand-written loop (autocast, AdamW, clipping)."""
    from ftrecipe.freeze import apply_freeze_plan
    from ftrecipe.records import resolve
    from ftrecipe.registry import get_registry
    from ftrecipe.task import TaskContext
    from ftrecipe.validation import validate_data

    result = validate_data(raw, source="bench.yaml")
    assert result.ok, [d.text() for d in result.diagnostics]
    recipe = result.recipe
    registry = get_registry()
    task = resolve(registry.modalities[recipe.model.modality].task)(
        TaskContext(recipe=recipe, registry=registry, base_dir=Path("."), output_dir=Path(tempfile.mkdtemp()), log=lambda m: None)
    )
    data = task.build_data()
    torch.manual_seed(recipe.training.seed)
    base = task.build_model()
    model, _ = apply_freeze_plan(base, recipe, task.anatomy(base))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    loader = torch.utils.data.DataLoader(data.train, batch_size=recipe.training.batch_size, shuffle=True,
                                         collate_fn=data.collate, num_workers=recipe.hardware.dataloader_workers or 0,
                                         pin_memory=device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    done, amount, start = 0, 0, time.perf_counter()
    while done < steps:
        for batch in loader:
            batch = send_to_device(batch, device, non_blocking=True)
            with autocast:
                loss = task.compute_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
            samples, tokens = task.batch_counts(batch)
            if done == max(1, steps // 4):  # same warm-up exclusion as the runner's first log window
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start, amount = time.perf_counter(), 0
            else:
                amount += tokens or samples
            if done == steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    params = sum(p.numel() for p in model.parameters())
    return {"rate": amount / (time.perf_counter() - start), "params": params,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("--mode", choices=sorted(FREEZE), default="full")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: check the script itself on a CPU")
    args = parser.parse_args()
    seq_len = 128 if args.tiny else args.seq_len
    raw = recipe_data(args.shape, args.mode, args.steps, args.batch, seq_len, args.tiny)
    plain = plain_loop(raw, args.steps)
    with tempfile.TemporaryDirectory() as out:
        runner = through_runner(recipe_data(args.shape, args.mode, args.steps, args.batch, seq_len, args.tiny), Path(out) / "run")
    unit = runner["unit"].replace("_per_second", "/s")
    flops_per_unit = 6 * plain["params"] if "tokens" in runner["unit"] else None
    print(f"{args.shape} {args.mode}: {plain['params'] / 1e6:,.1f}M parameters, device {'cuda' if torch.cuda.is_available() else 'cpu'}")
    for name, result in (("plain loop", plain), ("ftrecipe run", runner)):
        line = f"  {name:13s} {result['rate']:12,.1f} {unit}"
        if flops_per_unit and torch.cuda.is_available():
            line += f"  MFU {100 * flops_per_unit * result['rate'] / (args.peak_tflops * 1e12):5.1f}%"
        if result["peak_gib"] is not None:
            line += f"  peak {result['peak_gib']:.1f} GiB"
        print(line)
    print(f"  ratio runner/plain: {runner['rate'] / plain['rate']:.3f}x  (goal >= 0.97x)")


if __name__ == "__main__":
    main()
