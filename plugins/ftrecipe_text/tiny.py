"""Tiny models and tokenizers built locally, for tests, demos and offline runs.

There is no model hub here: a "pretrained" model is a small config-built model saved with
``save_pretrained`` and loaded back through the real ``from_pretrained`` path. This module
makes those pieces (a byte-level BPE tokenizer with a chat template, tiny configs for the
families the text plugin knows) and guesses a checkpoint's family from its name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerFast

__all__ = [
    "FAMILIES",
    "SPECIAL_TOKENS",
    "CHAT_TEMPLATE",
    "train_bpe_tokenizer",
    "tiny_config",
    "family_of",
]

FAMILIES: Final[tuple[str, ...]] = ("llama", "falcon", "bert")

#: Special tokens of the tiny tokenizer, by role.
SPECIAL_TOKENS: Final[dict[str, str]] = {
    "pad_token": "<pad>",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
}
ROLE_TOKENS: Final[tuple[str, ...]] = ("<|system|>", "<|user|>", "<|assistant|>")

#: A minimal chat template: one ``<|role|>`` line per turn, EOS after assistant turns.
#: Newlines are Jinja expressions because transformers renders with ``trim_blocks``.
CHAT_TEMPLATE: Final[str] = (
    "{% for m in messages %}"
    "{{ '<|' + m['role'] + '|>' + '\\n' + m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' + '\\n' }}{% endif %}"
)


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 512,
    out_dir: str | Path | None = None,
    *,
    add_bos: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for transformers.

    It has ``<pad>``, ``<s>`` (BOS), ``</s>`` (EOS), ``<unk>`` and the chat role tokens as
    special tokens, adds BOS in front of every encoding when ``add_bos`` (Llama-style), and
    carries :data:`CHAT_TEMPLATE`. With ``out_dir`` it is saved there, so
    ``AutoTokenizer.from_pretrained(out_dir)`` reloads it. Deterministic for the same texts.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [SPECIAL_TOKENS[k] for k in ("pad_token", "bos_token", "eos_token", "unk_token")]
    specials += list(ROLE_TOKENS)
    tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    bos = SPECIAL_TOKENS["bos_token"]
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        additional_special_tokens=list(ROLE_TOKENS),
        **SPECIAL_TOKENS,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    if out_dir is not None:
        wrapped.save_pretrained(str(out_dir))
    return wrapped


def tiny_config(family: str, vocab_size: int, **overrides: Any) -> PretrainedConfig:
    """A tiny config (hidden 64, 2 layers, 4 heads) of ``family`` (``llama``, ``falcon``, ``bert``).

    ``overrides`` go to the config (e.g. ``pad_token_id``, ``eos_token_id``,
    ``max_position_embeddings``, ``num_labels``). Falcon uses rotary positions
    (``alibi=False``), which sequence packing requires.
    """
    from transformers import BertConfig, FalconConfig, LlamaConfig

    common: dict[str, Any] = {"vocab_size": vocab_size, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    if family == "llama":
        params = {**common, "intermediate_size": 128, "num_key_value_heads": 4, "max_position_embeddings": 512,
                  "tie_word_embeddings": False}
        return LlamaConfig(**{**params, **overrides})
    if family == "falcon":
        params = {**common, "alibi": False, "new_decoder_architecture": False, "multi_query": True,
                  "parallel_attn": True, "bias": False, "max_position_embeddings": 512}
        return FalconConfig(**{**params, **overrides})
    if family == "bert":
        params = {**common, "intermediate_size": 128, "max_position_embeddings": 512}
        return BertConfig(**{**params, **overrides})
    raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")


# Names that contain a family word but are a different architecture.
_NOT_FAMILY: Final[dict[str, tuple[str, ...]]] = {
    "llama": ("llava", "mllama", "llama4", "llama-4", "llama_4"),
    "falcon": ("falcon_mamba", "falcon-mamba", "falconmamba", "falcon_h1", "falcon-h1", "falconh1"),
    "bert": (),
}


def _family_from_model_type(model_type: str) -> str | None:
    return model_type if model_type in FAMILIES else None


def family_of(name_or_config: str | Path | Mapping[str, Any] | Any) -> str | None:
    """Guess the model family (``llama``, ``falcon``, ``bert``) or return None.

    Accepts a config object or dict (its ``model_type`` decides), a local checkpoint
    directory (its ``config.json``'s ``model_type``), a ``model_type`` string, or a hub id
    / path name, matched by name: ``meta-llama/Llama-2-7b-hf`` and ``TinyLlama/...`` are
    llama, ``tiiuae/falcon-40b`` is falcon, ``bert-base-uncased`` is bert. Names of other
    architectures that merely contain a family word (``roberta``, ``distilbert``, ``llava``,
    ``falcon-mamba``) give None.
    """
    if isinstance(name_or_config, Mapping):
        return _family_from_model_type(str(name_or_config.get("model_type", "")))
    model_type = getattr(name_or_config, "model_type", None)
    if isinstance(model_type, str) and not isinstance(name_or_config, (str, Path)):
        return _family_from_model_type(model_type)
    if not isinstance(name_or_config, (str, Path)):
        return None

    text = str(name_or_config)
    config_file = Path(text) / "config.json"
    try:
        if config_file.is_file():
            data = json.loads(config_file.read_text(encoding="utf-8"))
            return _family_from_model_type(str(data.get("model_type", "")))
    except (OSError, ValueError):
        pass

    lowered = text.lower()
    if lowered in FAMILIES:
        return lowered
    if any(bad in lowered for bads in _NOT_FAMILY.values() for bad in bads):
        return None
    if "llama" in lowered:
        return "llama"
    if "falcon" in lowered:
        return "falcon"
    # 'bert' only as a whole word of the last path part: not roberta/distilbert/albert/deberta
    base = lowered.rstrip("/").rsplit("/", 1)[-1]
    if "bert" in re.split(r"[^a-z0-9]+", base):
        return "bert"
    return None
