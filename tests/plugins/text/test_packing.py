"""Packing: bin assignment, labels/positions, padding stats, and the acceptance check that packed
and unpacked runs give the same per-example loss on tiny Llama and Falcon models (examples kept
apart by Transformers' mask builder from position ids alone)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM

from ftrecipe_text.packing import (
    PaddingStats,
    compare_padding,
    pack_examples,
    packed_collate,
    packed_stats,
    padded_stats,
)
from ftrecipe_text.tiny import tiny_config
from ftrecipe_text.tokenization import IGNORE_INDEX, TokenizedExample, pad_collate

VOCAB = 128
PAD = 0


def make_examples(lengths: list[int], seed: int = 0) -> list[TokenizedExample]:
    """Random token examples whose first half is prompt (label -100)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, VOCAB, (n,), generator=g).tolist()
        p = n // 2
        out.append(TokenizedExample(ids, [IGNORE_INDEX] * p + ids[p:]))
    return out


def test_bfd_vs_sequential_known_case() -> None:
    exs = make_examples([6, 5, 4, 3, 2])
    bfd = pack_examples(exs, 10)
    assert [r.example_indices for r in bfd] == [(0, 2), (1, 3, 4)]
    seq = pack_examples(exs, 10, strategy="sequential")
    assert [r.example_indices for r in seq] == [(0,), (1, 2), (3, 4)]


def test_row_contents() -> None:
    exs = make_examples([4, 3])
    (row,) = pack_examples(exs, 8, strategy="sequential")
    assert row.input_ids == exs[0].input_ids + exs[1].input_ids
    assert row.position_ids == [0, 1, 2, 3, 0, 1, 2]
    assert row.segment_ids == [0, 0, 0, 0, 1, 1, 1]
    # each example's first label is never a target (it would be predicted from the previous example)
    assert row.labels == [IGNORE_INDEX, *exs[0].labels[1:], IGNORE_INDEX, *exs[1].labels[1:]]
    assert row.lengths == (4, 3)


def test_pack_errors() -> None:
    with pytest.raises(ValueError, match="truncate"):
        pack_examples(make_examples([5]), 4)
    with pytest.raises(ValueError, match="strategy"):
        pack_examples(make_examples([2]), 4, strategy="ffd")  # type: ignore[arg-type]


@settings(max_examples=80, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=16), min_size=1, max_size=40),
    seq_len=st.integers(min_value=16, max_value=48),
    strategy=st.sampled_from(["bfd", "sequential"]),
)
def test_pack_invariants(lengths: list[int], seq_len: int, strategy: str) -> None:
    exs = make_examples(lengths)
    rows = pack_examples(exs, seq_len, strategy=strategy)  # type: ignore[arg-type]
    assert sorted(i for r in rows for i in r.example_indices) == list(range(len(exs)))
    assert all(len(r) <= seq_len for r in rows)
    assert all(len(r) == sum(r.lengths) for r in rows)
    lower_bound = -(-sum(lengths) // seq_len)
    assert len(rows) >= lower_bound
    if strategy == "bfd":
        assert len(rows) <= len(pack_examples(exs, seq_len, strategy="sequential"))
    else:
        assert [i for r in rows for i in r.example_indices] == list(range(len(exs)))


def test_collate_pads_with_positions_of_their_own_and_no_mask() -> None:
    rows = pack_examples(make_examples([2, 3]), 8, strategy="sequential")
    batch = packed_collate(rows, PAD, pad_to=6)
    assert set(batch) == {"input_ids", "labels", "position_ids", "use_cache"} and batch["use_cache"] is False
    assert batch["position_ids"][0].tolist() == [0, 1, 0, 1, 2, 0]  # the pad starts a block of its own
    assert batch["labels"][0, 5].item() == IGNORE_INDEX and batch["input_ids"][0, 5].item() == PAD
    with pytest.raises(ValueError, match="shorter"):
        packed_collate(rows, PAD, pad_to=4)


def per_example_losses_unpacked(model, examples: list[TokenizedExample]) -> list[float]:
    losses = []
    for ex in examples:
        out = model(input_ids=torch.tensor([ex.input_ids]), labels=torch.tensor([ex.labels]))
        losses.append(out.loss.item())
    return losses


def per_example_losses_packed(model, rows, batch) -> dict[int, float]:
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    losses: dict[int, float] = {}
    for r, row in enumerate(rows):
        n = len(row)
        labels = batch["labels"][r, 1:n]
        segs = torch.tensor(row.segment_ids[1:])
        tok = F.cross_entropy(logits[r, : n - 1].float(), labels, ignore_index=IGNORE_INDEX, reduction="none")
        for k, idx in enumerate(row.example_indices):
            sel = (segs == k) & (labels != IGNORE_INDEX)
            losses[idx] = tok[sel].mean().item()
    return losses


FAMILIES_AND_IMPLS = [(f, i) for f in ("llama", "falcon") for i in ("eager", "sdpa")]


def tiny_model(family: str, attn: str):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(family, VOCAB, pad_token_id=PAD), attn_implementation=attn)
    assert model.config._attn_implementation == attn
    return model.eval()


@pytest.mark.parametrize(("family", "attn"), FAMILIES_AND_IMPLS)
def test_packed_loss_equals_unpacked(family: str, attn: str) -> None:
    examples = make_examples([5, 9, 3, 12, 7, 4, 11, 6])
    model = tiny_model(family, attn)
    rows = pack_examples(examples, 20)
    assert len(rows) < len(examples)
    assert any(len(r.lengths) >= 3 for r in rows)
    with torch.no_grad():
        reference = per_example_losses_unpacked(model, examples)
        packed = per_example_losses_packed(model, rows, packed_collate(rows, PAD, pad_to=24))
        padded_logits = model(**pad_collate(examples, PAD)).logits
    for i, ex in enumerate(examples):
        assert packed[i] == pytest.approx(reference[i], abs=1e-5), f"example {i}"
        labels = torch.tensor(ex.labels[1:])
        pad_loss = F.cross_entropy(padded_logits[i, : len(ex) - 1], labels, ignore_index=IGNORE_INDEX)
        assert pad_loss.item() == pytest.approx(reference[i], abs=1e-5)


@pytest.mark.parametrize("family", ["llama", "falcon"])
def test_with_a_kv_cache_transformers_ignores_the_boundaries(family: str) -> None:
    """Negative control: the equality above holds only because the batch turns the cache off."""
    examples = make_examples([6, 8, 5])
    model = tiny_model(family, "sdpa")
    rows = pack_examples(examples, 19, strategy="sequential")
    assert len(rows) == 1
    batch = {**packed_collate(rows, PAD), "use_cache": True}
    with torch.no_grad():
        reference = per_example_losses_unpacked(model, examples)
        leaky = per_example_losses_packed(model, rows, batch)
    assert leaky[0] == pytest.approx(reference[0], abs=1e-5)  # the first example sees nothing earlier
    assert max(abs(leaky[i] - reference[i]) for i in (1, 2)) > 1e-3


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_model_loss_and_backward_on_packed_batch(attn: str) -> None:
    model = tiny_model("llama", attn).train()
    rows = pack_examples(make_examples([5, 9, 3, 12]), 16)
    out = model(**packed_collate(rows, PAD))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_padding_stats() -> None:
    examples = make_examples([2, 4, 6, 8])
    # padded in pairs: [2,4] -> 8 slots, [6,8] -> 16 slots; real 20 of 24
    padded = padded_stats(examples[:2]) + padded_stats(examples[2:])
    assert padded == PaddingStats(real_tokens=20, total_tokens=24)
    assert padded.pad_tokens == 4 and padded.padding_fraction == pytest.approx(4 / 24)
    assert padded_stats(examples[:2], pad_to_multiple_of=8) == PaddingStats(6, 16)
    rows = pack_examples(examples, 10)  # bfd: [8,2], [6,4]
    assert [r.lengths for r in rows] == [(8, 2), (6, 4)]
    assert packed_stats(rows) == PaddingStats(20, 20)
    assert packed_stats(rows, pad_to=12).padding_fraction == pytest.approx(4 / 24)
    assert PaddingStats().padding_fraction == 0.0


def test_compare_padding_packing_pads_less() -> None:
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(4, 60, (200,), generator=g).tolist()
    padded, packed = compare_padding(make_examples(lengths), batch_size=8, seq_len=128)
    assert padded.real_tokens == packed.real_tokens == sum(lengths)
    assert padded.padding_fraction > 0.3  # lengths 4..59 padded to each batch's longest
    assert packed.padding_fraction < 0.02


def test_models_that_cannot_keep_packed_examples_apart_are_refused() -> None:
    from ftrecipe.errors import RecipeRuntimeError
    from ftrecipe_text.packing import check_packable

    check_packable(tiny_model("llama", "sdpa"))  # built on Transformers' mask builder
    check_packable(tiny_model("falcon", "sdpa"))
    alibi = AutoModelForCausalLM.from_config(tiny_config("falcon", VOCAB, alibi=True))
    with pytest.raises(RecipeRuntimeError, match="ALiBi"):
        check_packable(alibi)

    class OwnMask(torch.nn.Module):  # like remote code that builds its own mask (this module has no create_causal_mask)
        config = tiny_config("llama", VOCAB)

    with pytest.raises(RecipeRuntimeError, match="OwnMask builds its own attention mask") as error:
        check_packable(OwnMask())
    assert error.value.path == ("data", "packing")
