"""Tiny tokenizer and models: save to disk and reload through the real Auto* paths."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from ftrecipe_text.formatting import render_example
from ftrecipe_text.tiny import family_of, tiny_config, train_bpe_tokenizer
from ftrecipe_text.tokenization import tokenize_example


def test_tokenizer_roundtrip_and_specials(tmp_path, sql_texts) -> None:
    tok = train_bpe_tokenizer(sql_texts, vocab_size=400, out_dir=tmp_path)
    assert len(tok) == 400
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "SELECT name FROM employees WHERE dept = 'sales';"
    assert reloaded(text)["input_ids"] == tok(text)["input_ids"]
    assert reloaded(text)["input_ids"][0] == reloaded.bos_token_id
    assert reloaded.decode(reloaded(text)["input_ids"], skip_special_tokens=True) == text
    for name in ("pad_token", "bos_token", "eos_token"):
        assert getattr(reloaded, name) == getattr(tok, name)
    assert len({reloaded.pad_token_id, reloaded.bos_token_id, reloaded.eos_token_id}) == 3
    # the chat template survives the round trip, so the chat form works after reloading
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    assert render_example(row, form="chat", tokenizer=reloaded) == ("<|user|>\nhi\n<|assistant|>\n", "yo")
    # role markers are single tokens
    assert len(reloaded("<|assistant|>", add_special_tokens=False)["input_ids"]) == 1


def test_tokenizer_is_deterministic(sql_texts) -> None:
    a = train_bpe_tokenizer(sql_texts, vocab_size=300)
    b = train_bpe_tokenizer(sql_texts, vocab_size=300)
    assert a.get_vocab() == b.get_vocab()


@pytest.mark.parametrize("family", ["llama", "falcon"])
def test_causal_lm_save_reload(tmp_path, tokenizer, family: str) -> None:
    cfg = tiny_config(
        family,
        len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (64, 2, 4)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == family
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ex = tokenize_example(tok, "Who works in sales?\n", "SELECT 1;", 64)
    ids = torch.tensor([ex.input_ids])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, reloaded(ids).logits, atol=1e-6)
        out = reloaded(ids, labels=torch.tensor([ex.labels]))
    assert torch.isfinite(out.loss)
    assert family_of(tmp_path) == family


def test_bert_classifier_save_reload(tmp_path, tokenizer) -> None:
    cfg = tiny_config("bert", len(tokenizer), num_labels=3, pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForSequenceClassification.from_config(cfg).eval()
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    batch = tokenizer(["How many employees?", "Who works in sales?"], padding=True, return_tensors="pt")
    batch.pop("token_type_ids", None)
    with torch.no_grad():
        logits = reloaded(**batch).logits
    assert logits.shape == (2, 3)
    assert torch.allclose(model(**batch).logits, logits, atol=1e-6)


def test_falcon_config_uses_rotary_not_alibi() -> None:
    assert tiny_config("falcon", 100).alibi is False


def test_tiny_config_overrides_and_unknown_family() -> None:
    assert tiny_config("llama", 100, num_hidden_layers=1).num_hidden_layers == 1
    with pytest.raises(ValueError, match="unknown family"):
        tiny_config("gpt2", 100)


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("meta-llama/Llama-2-7b-hf", "llama"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama"),
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "llama"),
        ("codellama/CodeLlama-7b-hf", "llama"),
        ("tiiuae/falcon-40b", "falcon"),
        ("tiiuae/falcon-7b-instruct", "falcon"),
        ("bert-base-uncased", "bert"),
        ("google-bert/bert-base-cased", "bert"),
        ("llama", "llama"),
        ("falcon", "falcon"),
        ("bert", "bert"),
        ("roberta-base", None),
        ("distilbert-base-uncased", None),
        ("albert-base-v2", None),
        ("microsoft/deberta-v3-base", None),
        ("llava-hf/llava-1.5-7b-hf", None),
        ("tiiuae/falcon-mamba-7b", None),
        ("gpt2", None),
        ("", None),
    ],
)
def test_family_of_names(name: str, family: str | None) -> None:
    assert family_of(name) == family


def test_family_of_configs() -> None:
    assert family_of(tiny_config("falcon", 50)) == "falcon"
    assert family_of(AutoConfig.for_model("gpt2")) is None
    assert family_of({"model_type": "bert"}) == "bert"
    assert family_of({"model_type": "llava"}) is None
    assert family_of(42) is None
