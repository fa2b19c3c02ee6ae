"""Cross-entropy from the final hidden states, without ever holding the full logits.

A causal LM's logits are tokens x vocabulary: at batch 8 x 2048 tokens and a 32k vocabulary they take
2 GiB in fp32 (and the standard loss keeps an fp32 copy and its gradient beside the bf16 ones), more than
a LoRA model's every other activation. Here the output layer and the loss run together, a chunk of
tokens at a time: each chunk's logits live only inside the loop, and the gradients of the hidden states
(and of the output weight, when it trains) are computed there too, so the backward pass only scales them.
Plain torch: it runs, and is tested against the standard loss, on any device. ``training.loss: fused``
hands the same call to Liger's Triton kernel instead.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def chunk_tokens(tokens: int, vocab: int, hidden: int) -> int:
    """Tokens per chunk such that a chunk's logits are about the size of the hidden states (as Liger
    chunks): the loss then adds no more than the activations it reads."""
    chunks = max(1, math.ceil(vocab / max(1, hidden)))
    return max(1, math.ceil(tokens / chunks))


class _LinearCrossEntropy(torch.autograd.Function):
    """Sum over tokens of -log softmax(hidden @ weight.T + bias)[label]; gradients made in the forward."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                labels: torch.Tensor, chunk: int) -> torch.Tensor:
        grads = [t is not None and t.requires_grad for t in (hidden, weight, bias)]
        grad_hidden = torch.empty_like(hidden) if grads[0] else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if grads[1] else None
        grad_bias = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if grads[2] else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h, y = hidden[start:start + chunk], labels[start:start + chunk]
            logits = torch.nn.functional.linear(h, weight, bias).float()
            log_norm = torch.logsumexp(logits, dim=-1)
            total += (log_norm - logits.gather(1, y[:, None]).squeeze(1)).sum()
            if not any(grads):
                continue
            # d loss / d logits = softmax - one_hot(label), made in place of the logits
            dlogits = logits.sub_(log_norm[:, None]).exp_()
            dlogits[torch.arange(len(y), device=y.device), y] -= 1
            if grad_bias is not None:
                grad_bias += dlogits.sum(0)
            dlogits = dlogits.to(h.dtype)
            if grad_hidden is not None:
                grad_hidden[start:start + chunk] = dlogits @ weight.to(h.dtype)
            if grad_weight is not None:
                grad_weight += (dlogits.t() @ h).float()
        ctx.save_for_backward(*(t for t in (grad_hidden, grad_weight, grad_bias) if t is not None))
        ctx.grads, ctx.weight_dtype = grads, weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        saved = iter(ctx.saved_tensors)
        grad_hidden, grad_weight, grad_bias = (next(saved) if wanted else None for wanted in ctx.grads)
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_output.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_output).to(ctx.weight_dtype)
        if grad_bias is not None:
            grad_bias = (grad_bias * grad_output).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, grad_bias, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                         bias: torch.Tensor | None = None, *, chunk: int | None = None) -> torch.Tensor:
    """Summed cross-entropy of ``hidden @ weight.T + bias`` against ``labels``, chunked over the tokens.

    Args:
        hidden: (tokens, hidden) final hidden states, only of the tokens whose loss counts.
        weight: (vocab, hidden) the output layer's weight; bias: its bias, if any.
        labels: (tokens,) target ids.
        chunk: tokens per chunk (default: :func:`chunk_tokens`).
    """
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0 + weight.sum() * 0.0  # no counted token: a zero that keeps the graph
    size = chunk or chunk_tokens(hidden.shape[0], weight.shape[0], weight.shape[1])
    return _LinearCrossEntropy.apply(hidden, weight, bias, labels, size)
