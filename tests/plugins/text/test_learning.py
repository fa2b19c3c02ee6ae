"""End to end on CPU: a tiny Llama trained from scratch on packed synthetic SQL learns to
answer held-out questions (exact match rises from 0), using every building block together."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM

from ftrecipe_text.formatting import render_examples
from ftrecipe_text.metrics import load_metric
from ftrecipe_text.packing import pack_examples, packed_collate
from ftrecipe_text.synthetic import synthetic_sql
from ftrecipe_text.tiny import tiny_config, train_bpe_tokenizer
from ftrecipe_text.tokenization import tokenize_examples

TEMPLATE = "{question}\n"
COLUMNS = {"completion": "query"}


def exact_match_of(model, tok, pairs: list[tuple[str, str]]) -> float:
    """Greedy-decode all prompts in one left-padded batch and score with the SQL normaliser."""
    model.eval()
    tok.padding_side = "left"
    batch = tok([p for p, _ in pairs], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(
            **batch, max_new_tokens=30, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id
        )
    preds = tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    model.train()
    metric = load_metric("exact_match")
    return metric.compute(predictions=preds, references=[c for _, c in pairs], normalizer="sql")["exact_match"]


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two threads that compete with other
    processes can make this test many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.e2e
@pytest.mark.usefixtures("one_thread")
def test_tiny_llama_learns_synthetic_sql() -> None:
    """About 15 s on one core: 180 packed steps, then greedy decoding of 20 held-out questions."""
    torch.manual_seed(0)
    train = synthetic_sql(1500, seed=0)
    seen = {r["question"] for r in train}
    held_out = [r for r in synthetic_sql(400, seed=1) if r["question"] not in seen][:20]
    assert len(held_out) == 20

    tok = train_bpe_tokenizer([r["question"] for r in train] + [r["query"] for r in train], vocab_size=400)
    report = tokenize_examples(tok, render_examples(train, form="completion", columns=COLUMNS, template=TEMPLATE), 64)
    assert report.num_truncated == 0
    cfg = tiny_config(
        "llama", len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    model = AutoModelForCausalLM.from_config(cfg)
    test_pairs = render_examples(held_out, form="completion", columns=COLUMNS, template=TEMPLATE)
    before = exact_match_of(model, tok, test_pairs)

    rows = pack_examples(report.examples, 256)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(0)
    step = 0
    while step < 180:
        rng.shuffle(rows)
        for start in range(0, len(rows) - 7, 8):
            loss = model(**packed_collate(rows[start : start + 8], tok.pad_token_id)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step == 180:
                break
    after = exact_match_of(model, tok, test_pairs)
    assert before == 0.0
    assert after >= 0.5, f"exact match only {after} after training"
