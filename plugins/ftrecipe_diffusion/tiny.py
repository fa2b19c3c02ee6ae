"""Build a tiny Stable Diffusion pipeline from configs, fully offline (tests, smoke runs, the demo).

There is no model hub here, so a pipeline of the same family is assembled from configs: a small
UNet2DConditionModel, AutoencoderKL and CLIPTextModel, and a ``CLIPTokenizer`` whose BPE is built
from the run's prompts with CLIP's own normaliser, pre-tokeniser and ``</w>`` word suffix. It
is saved with ``save_pretrained`` and loaded back through ``from_pretrained``: the real loading path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = ["TINY_KEYS", "build_clip_tokenizer", "build_tiny_pipeline"]

#: ``model.config`` keys a recipe may set for the tiny pipeline.
TINY_KEYS = ("unet_channels", "vae_channels", "text_hidden", "text_layers", "max_tokens")

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def build_clip_tokenizer(prompts: Iterable[str], *, max_tokens: int = 32):
    """A ``CLIPTokenizer`` whose BPE spells every word of ``prompts`` as one token.

    Words are split exactly as ``CLIPTokenizer`` splits text (its own normaliser and byte-level
    pre-tokeniser); each word gets the chain of merges that builds it left to right, ending in
    ``</w>``, and every byte is in the vocabulary alone and at a word's end, so no text is unknown.
    Built without a trainer, the vocabulary is the same in every process (a trained BPE breaks ties
    differently from run to run, and exact resume needs the same token ids).
    """
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    lines = [p for p in prompts if p and p.strip()]
    if not lines:
        raise ValueError("need at least one prompt to build the tokenizer")
    backend = CLIPTokenizer(vocab={BOS: 0, EOS: 1}, merges=[]).backend_tokenizer
    words = sorted({word for line in lines
                    for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(line))})
    vocab: dict[str, int] = {BOS: 0, EOS: 1}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        for token in (char, char + "</w>"):
            vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in words:
        symbols = list(word)
        symbols[-1] += "</w>"
        built = symbols[0]
        for symbol in symbols[1:]:
            if (built, symbol) not in seen:
                seen.add((built, symbol))
                merges.append((built, symbol))
            built += symbol
            vocab.setdefault(built, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_tokens)


def build_tiny_pipeline(
    prompts: Iterable[str],
    out_dir: str | os.PathLike[str],
    *,
    resolution: int = 64,
    prediction_type: str = "epsilon",
    unet_channels: int = 32,
    vae_channels: int = 32,
    text_hidden: int = 32,
    text_layers: int = 2,
    max_tokens: int = 32,
    seed: int = 0,
) -> Path:
    """``save_pretrained`` a tiny randomly initialised ``StableDiffusionPipeline`` to ``out_dir``.

    The VAE downsamples by 2 (two blocks), so a 64 px image is a 4x32x32 latent. Weights are seeded
    (``seed``) without touching the caller's global torch RNG; the same arguments give the same
    pipeline in every process, which exact resume relies on.
    """
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_clip_tokenizer(prompts, max_tokens=max_tokens)
    c, v = unet_channels, vae_channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=resolution // 2, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(c, 2 * c), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=text_hidden,
            attention_head_dim=4, norm_num_groups=min(8, c),
        )
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(v, 2 * v), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=min(8, v), sample_size=resolution,
        )
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=text_hidden, intermediate_size=2 * text_hidden,
            num_hidden_layers=text_layers, num_attention_heads=4, max_position_embeddings=max_tokens,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        ))
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              steps_offset=1, clip_sample=False, prediction_type=prediction_type)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(out)
    # Every process of a several-device job builds its own copy, and Transformers (5.2x) writes the text
    # encoder (config and weights) on rank 0 only once torch.distributed is up: written here, in every process.
    from safetensors.torch import save_model

    text_encoder.config.save_pretrained(out / "text_encoder")
    save_model(text_encoder, str(out / "text_encoder" / "model.safetensors"), metadata={"format": "pt"})
    return out
