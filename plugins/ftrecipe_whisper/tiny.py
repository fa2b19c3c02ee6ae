"""Build tiny, fully offline Whisper models (tokenizer, feature extractor, processor, model).

There is no model hub here, so tests, the demo recipe and smoke runs need a Whisper built from
scratch that still goes through the real loading path (``save_pretrained`` then
``from_pretrained``/``pipeline``). The tokenizer is a byte-level BPE trained on the given
transcripts, laid out like Whisper's: BPE tokens, then ``<|endoftext|>``, ``<|startoftranscript|>``,
every language token of ``transformers``' ``LANGUAGES`` in order (generation computes a language id
as startoftranscript + 1 + index), the task and control tokens, ``<|notimestamps|>`` and the
1501 timestamp tokens ``<|0.00|>`` ... ``<|30.00|>``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AddedToken,
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperProcessor,
    WhisperTokenizer,
)
from transformers.models.whisper.tokenization_whisper import LANGUAGES

__all__ = [
    "SPECIAL_TOKENS",
    "TIMESTAMP_TOKENS",
    "build_generation_config",
    "build_tiny_whisper",
    "build_whisper_tokenizer",
    "tiny_whisper_config_like",
]

#: Whisper's special tokens in id order (after the text vocabulary).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    *(f"<|{code}|>" for code in LANGUAGES),
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",
    "<|notimestamps|>",
)
#: Timestamp tokens every 20 ms up to 30 s; they follow ``<|notimestamps|>`` directly.
TIMESTAMP_TOKENS: tuple[str, ...] = tuple(f"<|{i * 0.02:.2f}|>" for i in range(1501))

_FRAMES_PER_SECOND = 100  # hop 160 at 16 kHz
_SAMPLE_RATE = 16_000


def build_whisper_tokenizer(
    transcripts: Iterable[str],
    *,
    vocab_size: int = 512,
    language: str | None = "en",
    task: str | None = "transcribe",
) -> WhisperTokenizer:
    """Train a byte-level BPE on ``transcripts`` and wrap it as a ``WhisperTokenizer`` with Whisper's layout.

    Each transcript is trained both as is and with a leading space, since Whisper sees words
    in both positions. ``vocab_size`` caps the BPE part (it stays smaller on a tiny corpus).
    ``language``/``task`` set the label prefix (``<|startoftranscript|><|en|><|transcribe|><|notimestamps|>``).
    """
    lines = [t.strip() for t in transcripts if t and t.strip()]
    if not lines:
        raise ValueError("need at least one non-empty transcript to train the tokenizer")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size, 257),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    bpe.train_from_iterator(lines + [" " + line for line in lines], trainer)
    state = json.loads(bpe.to_str())
    vocab: dict[str, int] = dict(state["model"]["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]
    base = len(vocab)
    for i, tok in enumerate(SPECIAL_TOKENS + TIMESTAMP_TOKENS):
        vocab[tok] = base + i
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>")  # as in openai/whisper-*
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS[1:]]}
    )
    # Timestamps are added but not "special": Whisper computes timestamp_begin = last special id + 1.
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TIMESTAMP_TOKENS])
    tokenizer.set_prefix_tokens(language=language, task=task, predict_timestamps=False)
    _check_layout(tokenizer)
    return tokenizer


def _check_layout(tokenizer: WhisperTokenizer) -> None:
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS + TIMESTAMP_TOKENS))
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise RuntimeError("special/timestamp tokens are not contiguous; Whisper generation would misbehave")
    if tokenizer.all_special_ids[-1] != tokenizer.convert_tokens_to_ids("<|notimestamps|>"):
        raise RuntimeError("<|notimestamps|> must be the last special token")


def build_generation_config(
    tokenizer: WhisperTokenizer, config: WhisperConfig, *, begin_suppress_tokens: Sequence[int] | None = None
) -> GenerationConfig:
    """Generation config with what ``WhisperForConditionalGeneration.generate`` needs for language/task.

    ``begin_suppress_tokens`` defaults to the model config's list (Whisper forbids a transcript
    that starts with a bare space or ends at once).
    """
    tid = tokenizer.convert_tokens_to_ids
    eot = tid("<|endoftext|>")
    last_layer = config.decoder_layers - 1
    return GenerationConfig(
        decoder_start_token_id=tid("<|startoftranscript|>"),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        lang_to_id={f"<|{code}|>": tid(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"translate": tid("<|translate|>"), "transcribe": tid("<|transcribe|>")},
        no_timestamps_token_id=tid("<|notimestamps|>"),
        prev_sot_token_id=tid("<|startofprev|>"),
        is_multilingual=True,
        begin_suppress_tokens=list(
            begin_suppress_tokens if begin_suppress_tokens is not None else config.begin_suppress_tokens or []
        ),
        suppress_tokens=[],
        max_initial_timestamp_index=50,
        return_timestamps=False,
        alignment_heads=[[last_layer, h] for h in range(config.decoder_attention_heads)],
    )


def build_tiny_whisper(
    transcripts: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    chunk_length: int = 5,
    d_model: int = 64,
    encoder_layers: int = 2,
    decoder_layers: int = 2,
    attention_heads: int = 4,
    ffn_dim: int = 256,
    num_mel_bins: int = 80,
    bpe_vocab_size: int = 512,
    max_target_positions: int = 128,
    language: str | None = "en",
    task: str | None = "transcribe",
    seed: int = 0,
) -> Path:
    """Build and ``save_pretrained`` a tiny randomly initialised Whisper to ``out_dir``; returns the path.

    ``chunk_length`` (seconds) sets the feature extractor's window and ``max_source_positions``
    (= chunk_length * 50) together, so short clips train fast on a CPU. The saved folder loads with
    ``WhisperForConditionalGeneration.from_pretrained``, ``WhisperProcessor.from_pretrained`` and
    ``transformers.pipeline("automatic-speech-recognition", model=out_dir)``. Weights are seeded
    (``seed``) without touching the caller's global torch RNG.
    """
    if chunk_length < 1 or chunk_length > 30:
        raise ValueError("chunk_length must be 1..30 seconds")
    if d_model % attention_heads:
        raise ValueError("d_model must be divisible by attention_heads")
    out = Path(out_dir)
    tokenizer = build_whisper_tokenizer(transcripts, vocab_size=bpe_vocab_size, language=language, task=task)
    feature_extractor = WhisperFeatureExtractor(
        feature_size=num_mel_bins, sampling_rate=_SAMPLE_RATE, hop_length=160, chunk_length=chunk_length, n_fft=400
    )
    processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
    tid = tokenizer.convert_tokens_to_ids
    eot = tid("<|endoftext|>")
    space = tokenizer.convert_tokens_to_ids("\u0120")  # byte-level "Ġ": a lone space must not start a transcript
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=num_mel_bins,
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=attention_heads,
        decoder_attention_heads=attention_heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
        max_source_positions=chunk_length * _FRAMES_PER_SECOND // 2,
        max_target_positions=max_target_positions,
        decoder_start_token_id=tid("<|startoftranscript|>"),
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        # Suppression lists live in the generation config only (in the model config too they
        # trigger a deprecation warning on every generate call).
        begin_suppress_tokens=None,
        suppress_tokens=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = build_generation_config(tokenizer, config, begin_suppress_tokens=[space, eot])
    out.mkdir(parents=True, exist_ok=True)
    # Every process of a several-device job builds its own copy. Transformers (5.2x) writes weights only
    # on rank 0 once torch.distributed is initialised, so the files are written here directly.
    from safetensors.torch import save_model

    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    processor.save_pretrained(out)
    return out


def tiny_whisper_config_like(
    config: WhisperConfig | dict[str, Any],
    *,
    d_model: int = 64,
    layers: int = 2,
    attention_heads: int = 4,
    ffn_dim: int = 256,
    max_source_positions: int | None = None,
) -> WhisperConfig:
    """Shrink a real Whisper config for a smoke run: same family, vocabulary and token ids, tiny sizes.

    Vocabulary size, mel bins, special-token ids and suppress lists are kept so the real tokenizer
    and feature extractor still fit; ``max_source_positions`` can be lowered for a short window
    (it must then match the feature extractor's ``chunk_length * 50``).
    """
    if d_model % attention_heads:
        raise ValueError("d_model must be divisible by attention_heads")
    data = config.to_dict() if isinstance(config, WhisperConfig) else dict(config)
    data.update(
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=attention_heads,
        decoder_attention_heads=attention_heads,
        encoder_ffn_dim=ffn_dim,
        decoder_ffn_dim=ffn_dim,
    )
    if max_source_positions is not None:
        data["max_source_positions"] = max_source_positions
    for key in ("_name_or_path", "architectures", "torch_dtype", "dtype", "transformers_version"):
        data.pop(key, None)
    return WhisperConfig(**data)
