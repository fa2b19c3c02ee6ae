"""Completion-only labels, EOS, explicit truncation and padded collation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftrecipe_text.tiny import train_bpe_tokenizer
from ftrecipe_text.tokenization import (
    IGNORE_INDEX,
    TokenizedExample,
    pad_collate,
    tokenize_example,
    tokenize_examples,
)


def enc(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_untruncated_layout(tokenizer) -> None:
    prompt, completion = "How many employees work in sales?\n", "SELECT COUNT(*) FROM employees;"
    ex = tokenize_example(tokenizer, prompt, completion, max_length=128)
    p, c = enc(tokenizer, prompt), enc(tokenizer, completion)
    assert ex.input_ids == [tokenizer.bos_token_id, *p, *c, tokenizer.eos_token_id]
    assert ex.labels == [IGNORE_INDEX] * (1 + len(p)) + [*c, tokenizer.eos_token_id]
    assert not ex.truncated and not ex.completion_truncated
    assert ex.num_loss_tokens == len(c) + 1


def test_prompt_truncated_from_the_left_keeping_bos(tokenizer) -> None:
    prompt, completion = "Which employees earn more than 50000?\n", "SELECT name FROM employees;"
    p, c = enc(tokenizer, prompt), enc(tokenizer, completion)
    max_length = 1 + 3 + len(c) + 1  # room for BOS, three prompt tokens, completion and EOS
    ex = tokenize_example(tokenizer, prompt, completion, max_length)
    assert len(ex) == max_length
    assert ex.truncated and not ex.completion_truncated
    assert ex.input_ids == [tokenizer.bos_token_id, *p[-3:], *c, tokenizer.eos_token_id]
    assert ex.labels[:4] == [IGNORE_INDEX] * 4


def test_completion_cut_from_the_right_without_eos(tokenizer) -> None:
    prompt, completion = "Who works in legal?\n", "SELECT name FROM employees WHERE dept = 'legal';"
    c = enc(tokenizer, completion)
    ex = tokenize_example(tokenizer, prompt, completion, max_length=6)
    assert ex.truncated and ex.completion_truncated
    assert ex.input_ids == [tokenizer.bos_token_id, *c[:5]]
    assert ex.labels == [IGNORE_INDEX, *c[:5]]
    assert tokenizer.eos_token_id not in ex.input_ids


def test_tokenizer_without_bos_gets_no_prefix(sql_texts) -> None:
    tok = train_bpe_tokenizer(sql_texts[:100], vocab_size=300, add_bos=False)
    ex = tokenize_example(tok, "Who works in sales?\n", "SELECT 1;", 64)
    assert ex.input_ids[0] != tok.bos_token_id
    assert ex.input_ids == enc(tok, "Who works in sales?\n") + enc(tok, "SELECT 1;") + [tok.eos_token_id]


def test_errors(tokenizer) -> None:
    with pytest.raises(ValueError, match="no room"):
        tokenize_example(tokenizer, "a", "b", max_length=1)
    no_eos = SimpleNamespace(eos_token_id=None)
    with pytest.raises(ValueError, match="eos"):
        tokenize_example(no_eos, "a", "b", max_length=8)


def test_tokenize_examples_counts_truncations(tokenizer) -> None:
    pairs = [("short?\n", "SELECT 1;"), ("Which employees earn more than 50000?\n", "SELECT name FROM employees;")]
    short = len(tokenize_example(tokenizer, *pairs[0], max_length=512))
    report = tokenize_examples(tokenizer, pairs, max_length=short)
    assert [ex.truncated for ex in report.examples] == [False, True]
    assert report.num_truncated == 1 and report.num_completion_truncated == 0
    assert report.truncated_fraction == 0.5


def test_examples_encoded_in_batches_are_the_examples_encoded_one_by_one(tokenizer, sql_texts, monkeypatch) -> None:
    """tokenize_examples encodes a batch of pairs per tokenizer call: across batch boundaries, with and
    without a BOS, an empty prompt and truncated pairs, each example is what a call per text gives."""
    from ftrecipe_text import tokenization

    no_bos = train_bpe_tokenizer(sql_texts, vocab_size=300, add_bos=False)
    prompts = ["", "How many employees?\n", "Which employees earn more than 50000 in sales or support?\n" * 4]
    pairs = [(prompts[i % 3], f"SELECT {i} FROM t{'x' * (i % 7)};") for i in range(11)]
    for tok, specials in ((tokenizer, [tokenizer.bos_token_id]), (no_bos, [])):
        monkeypatch.setattr(tokenization, "_BATCH", 1)
        one_by_one = tokenize_examples(tok, pairs, max_length=40)
        monkeypatch.setattr(tokenization, "_BATCH", 4)
        assert tokenize_examples(tok, pairs, max_length=40) == one_by_one
        assert 0 < one_by_one.num_truncated < len(pairs)
        for (prompt, completion), ex in zip(pairs, one_by_one.examples):
            whole = specials + enc(tok, prompt) + enc(tok, completion) + [tok.eos_token_id]
            assert ex.input_ids == whole or (ex.truncated and len(whole) > 40)


text = st.text(alphabet="abc SELECT*=;'0123\n", max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=text, completion=text, max_length=st.integers(min_value=2, max_value=40))
def test_invariants(tokenizer, prompt: str, completion: str, max_length: int) -> None:
    ex = tokenize_example(tokenizer, prompt, completion, max_length)
    full = enc(tokenizer, completion) + [tokenizer.eos_token_id]
    assert len(ex.input_ids) == len(ex.labels) <= max_length
    n_masked = sum(1 for x in ex.labels if x == IGNORE_INDEX)
    assert ex.labels[:n_masked] == [IGNORE_INDEX] * n_masked  # masked part is a prefix
    target = ex.labels[n_masked:]
    assert target == ex.input_ids[n_masked:]
    assert target == full[: len(target)]  # loss tokens: the completion (+EOS), cut only at the right
    assert ex.input_ids[0] == tokenizer.bos_token_id
    untruncated_len = 1 + len(enc(tokenizer, prompt)) + len(full)
    assert ex.truncated == (untruncated_len > max_length)
    assert ex.completion_truncated == (len(full) > max_length - 1)


def test_pad_collate() -> None:
    a = TokenizedExample([5, 6, 7], [IGNORE_INDEX, 6, 7])
    b = TokenizedExample([8], [8])
    batch = pad_collate([a, b], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert all(t.dtype == torch.long for t in batch.values())
    assert pad_collate([a, b], pad_id=0, pad_to_multiple_of=4)["input_ids"].shape == (2, 4)
    with pytest.raises(ValueError):
        pad_collate([], pad_id=0)
