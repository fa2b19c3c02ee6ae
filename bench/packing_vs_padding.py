"""Packing vs padding on the real sql-eval lengths: padding fraction and useful tokens per second.

Goal (issue 4): packed batches waste under 5% on padding and train at least 2x the useful
(non-padding) tokens per second of padded batches. Runs a small LLaMA on the CPU (or CUDA when
present) through the same collators ftrecipe's causal-LM task uses.

    python bench/packing_vs_padding.py [--seq-len 512] [--batch 8] [--steps 12]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ftrecipe_text.packing import compare_padding, pack_examples, packed_collate
from ftrecipe_text.sql_eval import load_sql_eval
from ftrecipe_text.tiny import tiny_config, train_bpe_tokenizer
from ftrecipe_text.tokenization import pad_collate, tokenize_examples

ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sql-eval"
TEMPLATE = "-- schema: {schema}\n-- question: {question}\n-- sql: "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    if not ROOT.is_dir():
        raise SystemExit(f"sql-eval data not found at {ROOT}")
    rows = load_sql_eval(ROOT)
    pairs = [(TEMPLATE.format(**r), r["query"]) for r in rows]
    tokenizer = train_bpe_tokenizer([p + c for p, c in pairs], vocab_size=2000)
    examples = tokenize_examples(tokenizer, pairs, args.seq_len).examples
    padded, packed = compare_padding(examples, batch_size=args.batch, seq_len=args.seq_len)
    lengths = sorted(len(e) for e in examples)
    print(f"sql-eval: {len(examples)} examples, tokens per example min {lengths[0]} median {lengths[len(lengths) // 2]} max {lengths[-1]}")
    print(f"padding fraction   padded: {padded.padding_fraction:.1%}   packed: {packed.padding_fraction:.1%}  (goal < 5%)")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pad = tokenizer.pad_token_id
    n = args.steps * args.batch
    padded_batches = [pad_collate(examples[i : i + args.batch], pad) for i in range(0, n, args.batch)]
    rows_ = pack_examples(examples * 8, args.seq_len)
    packed_batches = []
    for i in range(0, args.steps * args.batch, args.batch):
        chunk = rows_[i : i + args.batch]
        batch = packed_collate(chunk, pad, mask_format="bool")
        batch["_real"] = sum(len(r) for r in chunk)
        packed_batches.append(batch)
    for b in padded_batches:  # count real tokens the same way for both
        b["_real"] = int(b["attention_mask"].sum())

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
            inputs = {k: v.to(device) for k, v in batch.items() if k != "_real"}
            model(**inputs).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            real += batch["_real"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        return real / (time.perf_counter() - start)

    padded_rate, packed_rate = rate(padded_batches), rate(packed_batches)
    print(f"useful tokens/s   padded: {padded_rate:,.0f}   packed: {packed_rate:,.0f}   ({device})")
    print(f"ratio packed/padded: {packed_rate / padded_rate:.2f}x  (goal >= 2x)")


if __name__ == "__main__":
    main()
