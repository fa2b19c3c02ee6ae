"""Packing vs padding on the real sql-eval lengths: padding fraction and useful tokens per second.

Goal (issue 4): packed batches waste under 5% on padding and train at least 2x the useful
(non-padding) tokens per second of padded batches. Runs a small LLaMA on the CPU (or CUDA when
present) through the same collators ftrecipe's causal-LM task uses, on the examples in a shuffled
order as training reads them, against two padded baselines: each batch padded to its longest
example (dynamic padding), and every batch padded to the sequence length (``max_length``
padding, as many fine-tuning scripts do). Removing a padding fraction f can speed up at most
1 / (1 - f), so the 2x goal is reachable only against a baseline that wastes more than half.

    python bench/packing_vs_padding.py [--seq-len 512] [--batch 8] [--steps 24]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch

from ftrecipe_text.packing import pack_examples, packed_collate
from ftrecipe_text.sql_eval import load_sql_eval
from ftrecipe_text.tiny import tiny_config, train_bpe_tokenizer
from ftrecipe_text.tokenization import pad_collate, tokenize_examples

ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sql-eval"
TEMPLATE = "-- schema: {schema}\n-- question: {question}\n-- sql: "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    if not ROOT.is_dir():
        raise SystemExit(f"sql-eval data not found at {ROOT}")
    rows = load_sql_eval(ROOT)
    pairs = [(TEMPLATE.format(**r), r["query"]) for r in rows]
    tokenizer = train_bpe_tokenizer([p + c for p, c in pairs], vocab_size=2000)
    examples = tokenize_examples(tokenizer, pairs, args.seq_len).examples
    random.Random(0).shuffle(examples)  # the order training reads them in, not grouped by database
    lengths = sorted(len(e) for e in examples)
    print(f"sql-eval: {len(examples)} examples, tokens per example min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]}")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pad = tokenizer.pad_token_id
    n = args.steps * args.batch
    cycle = examples * (1 + n // len(examples))
    baselines = {
        "padded to longest": [pad_collate(cycle[i : i + args.batch], pad) for i in range(0, n, args.batch)],
        "padded to seq-len": [pad_collate(cycle[i : i + args.batch], pad, pad_to_multiple_of=args.seq_len) for i in range(0, n, args.batch)],
    }
    rows_ = pack_examples(examples * 8, args.seq_len)
    packed_batches = []
    for i in range(0, n, args.batch):
        chunk = rows_[i : i + args.batch]
        batch = packed_collate(chunk, pad)
        batch["_real"] = sum(len(r) for r in chunk)
        packed_batches.append(batch)
    for batches in baselines.values():  # count real tokens the same way for every kind
        for b in batches:
            b["_real"] = int(b["attention_mask"].sum())

    def padding(batches) -> float:
        return 1 - sum(b["_real"] for b in batches) / sum(b["input_ids"].numel() for b in batches)

    for name, batches in {**baselines, "packed": packed_batches}.items():
        print(f"padding fraction {name:>18}: {padding(batches):6.1%}" + ("  (goal < 5%)" if name == "packed" else ""))

    from transformers import AutoModelForCausalLM

    def rate(batches) -> float:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(
            tiny_config("llama", len(tokenizer), hidden_size=args.hidden, intermediate_size=4 * args.hidden, max_position_embeddings=args.seq_len)
        ).to(device)
        real = 0
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        start = time.perf_counter()
        for i, batch in enumerate(batches):
            if i == 1:
                start, real = time.perf_counter(), 0
            inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items() if k != "_real"}
            model(**inputs).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            real += batch["_real"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return real / (time.perf_counter() - start)

    packed_rate = rate(packed_batches)
    print(f"useful tokens/s {'packed':>18}: {packed_rate:,.0f}   ({device})")
    for name, batches in baselines.items():
        baseline = rate(batches)
        print(f"useful tokens/s {name:>18}: {baseline:,.0f}   packed/this: {packed_rate / baseline:.2f}x  (goal >= 2x)")

if __name__ == "__main__":
    main()
