"""Loading text models and tokenizers the way a recipe asks: pretrained, from scratch, or smoke-sized.

``init: scratch`` (and ``--smoke``) builds a tiny model of the base's architecture family from a
config, with a byte-level BPE tokenizer trained on the recipe's own texts: nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from ftrecipe.plugin import RecipeRuntimeError, load_pretrained
from ftrecipe_text.tiny import family_of, tiny_config, train_bpe_tokenizer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def builds_from_config(recipe: Any, smoke: bool) -> bool:
    return smoke or recipe.model.init == "scratch"


def weight_dtype(recipe: Any) -> torch.dtype:
    """``model.dtype``; for ``auto``: bf16 weights under LoRA with bf16 mixed precision, else fp32.

    Full fine-tuning keeps fp32 master weights (mixed precision autocasts the matmuls); a frozen
    LoRA base needs no master copy, so it is loaded in bf16 to halve its memory.
    """
    if recipe.model.dtype != "auto":
        return _DTYPES[recipe.model.dtype]
    if recipe.freeze.strategy in ("lora", "qlora") and recipe.hardware.precision == "bf16-mixed":
        return torch.bfloat16
    return torch.float32


def quantization_config(recipe: Any) -> Any:
    quantization = recipe.model.quantization
    if quantization is None:
        return None
    from transformers import BitsAndBytesConfig

    if quantization.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization.type,
        bnb_4bit_use_double_quant=quantization.double_quant,
        bnb_4bit_compute_dtype=_DTYPES[quantization.compute_dtype],
    )


def family(recipe: Any) -> str:
    found = family_of(recipe.model.base)
    if found is None:
        raise RecipeRuntimeError(
            ("model", "base"),
            f"cannot tell the architecture family of '{recipe.model.base}' for a from-config model; "
            "name a family (llama, falcon, bert) or a local directory with a config.json",
        )
    return found


def load_tokenizer(recipe: Any, texts: Iterable[str], smoke: bool, vocab_size: int = 512) -> Any:
    """The recipe's tokenizer; a freshly trained BPE when the model is built from a config (unless
    ``init: scratch`` names its ``model.tokenizer``)."""
    if builds_from_config(recipe, smoke) and not (recipe.model.init == "scratch" and recipe.model.tokenizer):
        return train_bpe_tokenizer(texts, vocab_size=int(recipe.model.config.get("vocab_size", vocab_size)))
    from transformers import AutoTokenizer

    source = recipe.model.tokenizer or recipe.model.base
    key = ("model", "tokenizer") if recipe.model.tokenizer else ("model", "base")
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source, key=key, what="tokenizer",
                                revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def special_ids(tokenizer: Any) -> dict[str, int | None]:
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


# transformers' bitsandbytes integration quantises only layers whose type is exactly torch.nn.Linear
# (``type(module) is nn.Linear`` in integrations/bitsandbytes.py, checked on 5.24). Falcon builds its
# projections from ``FalconLinear``, an nn.Linear subclass whose forward is the same affine map
# (``input @ weight.T + bias``), so a Falcon QLoRA run would silently train an unquantised base. While
# such a model is built for quantisation, its subclass is replaced by nn.Linear itself (same
# parameters, same maths: tested), so the quantiser sees and converts those layers.
AFFINE_LINEAR_SUBCLASSES = {"falcon": ("transformers.models.falcon.modeling_falcon", "FalconLinear")}


@contextlib.contextmanager
def quantisable_linear_layers(model_type: str | None) -> Iterator[None]:
    """Build ``model_type``'s plain-affine nn.Linear subclasses as nn.Linear (for the quantiser)."""
    if model_type not in AFFINE_LINEAR_SUBCLASSES:
        yield
        return
    module_name, attribute = AFFINE_LINEAR_SUBCLASSES[model_type]
    module = importlib.import_module(module_name)
    original = getattr(module, attribute)
    setattr(module, attribute, torch.nn.Linear)
    try:
        yield
    finally:
        setattr(module, attribute, original)


def check_quantised(model: torch.nn.Module, recipe: Any) -> None:
    """A recipe that asks for a 4/8-bit base must get one: never train an unquantised base silently."""
    if recipe.model.quantization is None:
        return
    import bitsandbytes as bnb

    if not any(isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for module in model.modules()):
        raise RecipeRuntimeError(
            ("model", "quantization"),
            f"transformers quantised no layer of {type(model).__name__} (its bitsandbytes integration converts only "
            "plain torch.nn.Linear layers): training would use an unquantised base; use freeze.strategy lora "
            "without quantization",
        )


def keep_4bit_layers_trainable(model: torch.nn.Module) -> None:
    """Keep every 4-bit layer in the weight layout its backward pass needs.

    On a CPU with AVX512-BF16, bitsandbytes' ``Linear4bit`` repacks its weight for a faster inference kernel
    the first time it runs in eval mode without gradients (the evaluation before training) and keeps it
    so; that kernel has no backward, so every training step after it silently drops the gradient through
    each 4-bit layer, and LoRA below the top layer learns from a wrong gradient (checked on bitsandbytes
    0.50.2: the input's gradient is None). A model that trains keeps the plain layout; evaluation on a
    CPU is slower for it, and a GPU is unaffected."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _quantised_load(auto_class: Any, source: Any, model_type: str | None, recipe: Any, **kwargs: Any) -> torch.nn.Module:
    with quantisable_linear_layers(model_type):
        model = load_pretrained(auto_class.from_pretrained, source, **kwargs)
    check_quantised(model, recipe)
    keep_4bit_layers_trainable(model)
    return model


def from_config(recipe: Any, tokenizer: Any, auto_class: Any, **extra: Any) -> torch.nn.Module:
    """A randomly initialised tiny model of the base's family (seeded by the runner), in the recipe's
    weight dtype like a pretrained base (``model.dtype``; bf16 for LoRA under bf16 mixed precision)."""
    overrides = {k: v for k, v in recipe.model.config.items() if k != "vocab_size"}
    config = tiny_config(family(recipe), len(tokenizer), **special_ids(tokenizer), **extra, **overrides)
    attn = getattr(recipe.model, "attn_implementation", "auto")
    kwargs = {} if attn == "auto" else {"attn_implementation": attn}
    model = auto_class.from_config(config, dtype=weight_dtype(recipe), **kwargs)
    quantization = quantization_config(recipe)
    if quantization is None:
        return model
    # quantise the tiny model the way a real base would be: through from_pretrained
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        return _quantised_load(auto_class, directory, config.model_type, recipe,
                               quantization_config=quantization, dtype=weight_dtype(recipe), **kwargs)


def from_pretrained(recipe: Any, auto_class: Any, **extra: Any) -> torch.nn.Module:
    model = recipe.model
    kwargs: dict[str, Any] = {
        "revision": model.revision,
        "trust_remote_code": model.trust_remote_code,
        "dtype": weight_dtype(recipe),
        **extra,
    }
    attn = getattr(model, "attn_implementation", "auto")
    if attn != "auto":
        kwargs["attn_implementation"] = attn
    quantization = quantization_config(recipe)
    if quantization is None:
        return load_pretrained(auto_class.from_pretrained, model.base, **kwargs)
    from transformers import AutoConfig

    config = load_pretrained(AutoConfig.from_pretrained, model.base, revision=model.revision,
                             trust_remote_code=model.trust_remote_code)
    return _quantised_load(auto_class, model.base, config.model_type, recipe, quantization_config=quantization, **kwargs)
