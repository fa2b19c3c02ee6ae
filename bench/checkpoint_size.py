"""What a LoRA checkpoint costs on disk and in time: ftrecipe's (what trains) against Accelerate's whole state.

A LLaMA-shaped model built from a config (no download), LoRA on the attention projections as the text
plugin adds it, one AdamW step, then the same training state saved twice through Accelerate's
``save_state``: as it is (the whole model, frozen base included: what ftrecipe wrote before) and with
ftrecipe's ``keep_frozen_out`` (trainable weights, buffers, optimizer, RNGs). Goal: the checkpoint is
what trains, at most 1.1x the bytes of the trainable weights and their two AdamW moments (the rest is
RNG and schedule state); the whole-state save is printed beside it for the ratio.

    python bench/checkpoint_size.py [--hidden 1024] [--layers 8] [--rank 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

GOAL = 1.1


def build(hidden: int, layers: int, rank: int) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
                         num_attention_heads=max(1, hidden // 128), vocab_size=32000)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"]))


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def save(trained_only: bool, hidden: int, layers: int, rank: int, folder: Path) -> tuple[int, float, int]:
    """(bytes on disk, seconds to save, bytes of the trainable weights and AdamW moments)."""
    from accelerate import Accelerator

    from ftrecipe.runner.frozen import keep_frozen_out

    accelerator = Accelerator()
    model = build(hidden, layers, rank)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model, optimizer = accelerator.prepare(model, optimizer)
    ids = torch.randint(0, 32000, (2, 64), device=accelerator.device)
    accelerator.backward(model(input_ids=ids, labels=ids).loss)
    optimizer.step()
    options = keep_frozen_out(accelerator)[0] if trained_only else {}
    started = time.perf_counter()
    accelerator.save_state(str(folder), **options)
    seconds = time.perf_counter() - started
    trained = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return folder_bytes(folder), seconds, 3 * trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        whole, whole_s, _ = save(False, args.hidden, args.layers, args.rank, Path(scratch) / "whole")
        ours, ours_s, floor = save(True, args.hidden, args.layers, args.rank, Path(scratch) / "ours")
    mb = 1 << 20
    print(f"LLaMA-shaped, hidden {args.hidden}, {args.layers} layers, LoRA r={args.rank} on q_proj and v_proj")
    print(f"whole training state:  {whole / mb:9.1f} MiB in {whole_s:.2f} s")
    print(f"ftrecipe's checkpoint: {ours / mb:9.1f} MiB in {ours_s:.2f} s "
          f"({ours / whole:.3f}x the bytes, {ours_s / whole_s:.2f}x the time)")
    ratio = ours / floor
    print(f"against what trains (weights and two AdamW moments, {floor / mb:.1f} MiB): {ratio:.2f}x "
          f"(goal <= {GOAL}x): {'met' if ratio <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
