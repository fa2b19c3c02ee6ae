"""The tiny offline Whisper: Whisper's token layout, real loading path, generate, pipeline, training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers
from ftrecipe_whisper.synthetic import synthetic_clips
from ftrecipe_whisper.tiny import (
    SPECIAL_TOKENS,
    TIMESTAMP_TOKENS,
    build_tiny_whisper,
    build_whisper_tokenizer,
    tiny_whisper_config_like,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

CLIPS = synthetic_clips(12, seed=5)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper([t for _, t in CLIPS], tmp_path_factory.mktemp("tiny") / "model")


def test_saved_files(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    assert "preprocessor_config.json" in names or "processor_config.json" in names


def test_tokenizer_follows_whisper_layout(tiny_dir: Path) -> None:
    tok = transformers.WhisperTokenizer.from_pretrained(tiny_dir)
    sot = tok.convert_tokens_to_ids("<|startoftranscript|>")
    assert tok.convert_tokens_to_ids("<|endoftext|>") == sot - 1
    for i, code in enumerate(LANGUAGES):  # generation computes language ids this way
        assert tok.convert_tokens_to_ids(f"<|{code}|>") == sot + 1 + i
    notimestamps = tok.convert_tokens_to_ids("<|notimestamps|>")
    assert tok.all_special_ids[-1] == notimestamps
    assert tok.convert_tokens_to_ids("<|0.00|>") == notimestamps + 1
    assert tok.convert_tokens_to_ids("<|30.00|>") == notimestamps + 1501
    assert len(tok) == tok.convert_tokens_to_ids("<|30.00|>") + 1
    ids = tok(CLIPS[0][1]).input_ids
    assert tok.convert_ids_to_tokens(ids[:4]) == [
        "<|startoftranscript|>",
        "<|en|>",
        "<|transcribe|>",
        "<|notimestamps|>",
    ]
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == CLIPS[0][1]


def test_tokenizer_needs_text() -> None:
    with pytest.raises(ValueError):
        build_whisper_tokenizer(["", "  "])
    assert len(SPECIAL_TOKENS) == 2 + len(LANGUAGES) + 6 and len(TIMESTAMP_TOKENS) == 1501


def test_model_config_matches_window_and_vocab(tiny_dir: Path) -> None:
    model = transformers.WhisperForConditionalGeneration.from_pretrained(tiny_dir)
    processor = transformers.WhisperProcessor.from_pretrained(tiny_dir)
    cfg, gen = model.config, model.generation_config
    assert cfg.d_model == 64 and cfg.encoder_layers == 2 and cfg.decoder_layers == 2
    assert cfg.vocab_size == len(processor.tokenizer)
    assert processor.feature_extractor.chunk_length == 5
    assert processor.feature_extractor.nb_max_frames == 2 * cfg.max_source_positions == 500
    tok = processor.tokenizer
    assert gen.lang_to_id["<|en|>"] == tok.convert_tokens_to_ids("<|en|>")
    assert gen.task_to_id == {
        "translate": tok.convert_tokens_to_ids("<|translate|>"),
        "transcribe": tok.convert_tokens_to_ids("<|transcribe|>"),
    }
    assert gen.no_timestamps_token_id == tok.convert_tokens_to_ids("<|notimestamps|>")
    assert gen.is_multilingual is True
    assert gen.decoder_start_token_id == tok.convert_tokens_to_ids("<|startoftranscript|>")


def test_generate_with_language_and_task(tiny_dir: Path) -> None:
    model = transformers.WhisperForConditionalGeneration.from_pretrained(tiny_dir).eval()
    processor = transformers.WhisperProcessor.from_pretrained(tiny_dir)
    feats = processor.feature_extractor(
        [w for w, _ in CLIPS[:2]], sampling_rate=16_000, return_tensors="pt"
    ).input_features
    assert feats.shape == (2, 80, 500)
    tok = processor.tokenizer
    with torch.no_grad():
        out = model.generate(
            feats, language="en", task="transcribe", max_new_tokens=3, return_dict_in_generate=True
        )
    prompt = tok.convert_tokens_to_ids(["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"])
    assert out.sequences.shape == (2, 4 + 3)
    assert out.sequences[:, :4].tolist() == [prompt, prompt]
    with torch.no_grad():
        french = model.generate(feats, language="fr", task="translate", max_new_tokens=1, return_dict_in_generate=True)
    assert french.sequences[0, 1:3].tolist() == tok.convert_tokens_to_ids(["<|fr|>", "<|translate|>"])
    assert all(isinstance(t, str) for t in processor.batch_decode(out.sequences, skip_special_tokens=True))


def test_pipeline_runs_on_a_clip(tiny_dir: Path) -> None:
    asr = transformers.pipeline("automatic-speech-recognition", model=str(tiny_dir))
    result = asr({"raw": CLIPS[0][0], "sampling_rate": 16_000}, generate_kwargs={"max_new_tokens": 5})
    assert isinstance(result["text"], str)


def test_a_few_steps_fit_a_batch(tiny_dir: Path) -> None:
    """Training signal flows end to end: loss on a fixed batch drops clearly."""
    model = transformers.WhisperForConditionalGeneration.from_pretrained(tiny_dir)
    processor = transformers.WhisperProcessor.from_pretrained(tiny_dir)
    batch = CLIPS[:4]
    feats = processor.feature_extractor([w for w, _ in batch], sampling_rate=16_000, return_tensors="pt")
    labels = processor.tokenizer([t for _, t in batch], padding=True, return_tensors="pt")
    y = labels.input_ids.masked_fill(labels.attention_mask == 0, -100)[:, 1:]  # the model prepends <|sot|>
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = model(input_features=feats.input_features, labels=y).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_build_is_seeded_and_leaves_global_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_tiny_whisper(["one two"], tmp_path / "a", d_model=32, attention_heads=2, ffn_dim=64, seed=1)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = build_tiny_whisper(["one two"], tmp_path / "b", d_model=32, attention_heads=2, ffn_dim=64, seed=1)
    ma = transformers.WhisperForConditionalGeneration.from_pretrained(a)
    mb = transformers.WhisperForConditionalGeneration.from_pretrained(b)
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb)


def test_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chunk_length"):
        build_tiny_whisper(["x"], tmp_path, chunk_length=40)
    with pytest.raises(ValueError, match="divisible"):
        build_tiny_whisper(["x"], tmp_path, d_model=30, attention_heads=4)


def test_config_like_shrinks_a_real_config() -> None:
    real = transformers.WhisperConfig(
        vocab_size=51865, d_model=384, encoder_layers=4, decoder_layers=4, decoder_start_token_id=50258
    )
    small = tiny_whisper_config_like(real, max_source_positions=250)
    assert isinstance(small, transformers.WhisperConfig)
    assert (small.d_model, small.encoder_layers, small.decoder_layers, small.encoder_ffn_dim) == (64, 2, 2, 256)
    assert small.vocab_size == 51865 and small.decoder_start_token_id == 50258
    assert small.num_mel_bins == real.num_mel_bins and small.max_source_positions == 250
    model = transformers.WhisperForConditionalGeneration(small)
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    out = model(input_features=torch.zeros(1, 80, 500), decoder_input_ids=torch.tensor([[50258]]))
    assert out.logits.shape == (1, 1, 51865)
    assert tiny_whisper_config_like(real.to_dict()).d_model == 64
    with pytest.raises(ValueError):
        tiny_whisper_config_like(real, d_model=30, attention_heads=4)
