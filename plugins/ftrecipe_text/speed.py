"""The causal LM's speed switches: the attention kernel, a loss without the full logits, Liger's kernels.

Each is one key, off by default, applied after the freeze plan (so after PEFT's LoRA wrap: the kernels
replace the layers' norm, rotary and MLP *forwards* and leave the LoRA-wrapped linear layers in place),
and refused with a located error (exit 2) where this run cannot honour it.

The loss switch keeps the model's own forward: the output layer passes the final hidden states through
while training, and the model's ``loss_function`` (Transformers calls it with whatever the output layer
returned) computes the cross-entropy from them with the layer's weight, a chunk at a time
(:mod:`ftrecipe_text.chunked_loss`) or in Liger's kernel. In eval mode the layer makes logits again, for
evaluation and generation. Model types are admitted once a test has compared their loss and gradients
with the standard loss: a model that rescales or caps its logits after the output layer would be wrong.
"""

from __future__ import annotations

import importlib.util
from types import MethodType
from typing import Any

import torch

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe_text.chunked_loss import linear_cross_entropy
from ftrecipe_text.tiny import family_of
from ftrecipe_text.tokenization import IGNORE_INDEX

HIDDEN_STATE_LOSS_MODELS = ("llama", "mistral", "qwen2", "falcon")
"""Model types whose forward hands the output layer's result straight to ``loss_function`` (tested)."""
GPU_EXTRA = "pip install 'ftrecipe[gpu]'"


def _needs_cuda(key: tuple[str, ...], what: str, device: str) -> None:
    if device != "cuda":
        raise RecipeRuntimeError(key, f"{what} runs on CUDA only, but this run is on {device}")


def check_switches(recipe: Any, device: str | None) -> None:
    """Before the data is read and the model loaded: each switch's device and library (not while planning)."""
    if device is None:
        return
    training, model = recipe.training, recipe.model
    if training.kernels == "liger":
        _needs_cuda(("training", "kernels"), "liger (Triton kernels)", device)
    if training.loss == "fused":
        _needs_cuda(("training", "loss"), "the fused loss (a Triton kernel; use loss: chunked elsewhere)", device)
    if (training.kernels == "liger" or training.loss == "fused") and importlib.util.find_spec("liger_kernel") is None:
        key = ("training", "kernels") if training.kernels == "liger" else ("training", "loss")
        raise RecipeRuntimeError(key, f"liger-kernel is not installed: {GPU_EXTRA}")
    if model.attn_implementation == "flash_attention_2":
        _needs_cuda(("model", "attn_implementation"), "flash_attention_2", device)
        if importlib.util.find_spec("flash_attn") is None:
            raise RecipeRuntimeError(("model", "attn_implementation"),
                                     "flash_attention_2 needs the flash-attn package: pip install flash-attn "
                                     "--no-build-isolation (or use sdpa)")


def target_device(recipe: Any, device: str | None) -> str | None:
    """The run's device; while planning (``device`` None), the one the recipe is meant for."""
    if device is not None:
        return device
    hardware = recipe.hardware
    if hardware.accelerator == "auto":
        return "cuda" if hardware.gpu is not None else None
    return hardware.accelerator


def base_model_type(recipe: Any) -> str | None:
    """The base's ``model_type`` from its config on this machine, else from its name (``meta-llama/...``
    is llama), without running a checkpoint's own code; None where it cannot be told."""
    model = recipe.model
    if model.init == "scratch":
        return family_of(model.base)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model.base, revision=model.revision, local_files_only=True).model_type
    except (OSError, ValueError, KeyError):  # not here (a plan before the download): the name may tell
        return family_of(model.base)


def liger_model_types() -> set[str]:
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return {name for name in MODEL_TYPE_TO_APPLY_LIGER_FN if name}


def resolve_speed(recipe: Any, device: str | None, model_type: str | None = None) -> list[str]:
    """``training.speed: auto`` on ``device``: set each switch the recipe does not write to the fastest
    combination measured to work there (bench/speed_ab.py, LLaMA 1B LoRA on an H200: packing, fused loss
    and Liger's kernels, 1.71x the tokens/s of a plain Transformers + PEFT loop in 44% of its peak memory;
    compile with Liger crashed). Returns what it set, for the log; nothing off CUDA or without Liger.
    ``model_type`` defaults to the base's (:func:`base_model_type`), read only when it is needed."""
    training = recipe.training
    if getattr(training, "speed", "off") != "auto" or device != "cuda" or importlib.util.find_spec("liger_kernel") is None:
        return []
    model_type = model_type or base_model_type(recipe)
    written, chosen = set(training.model_fields_set), []
    if "loss" not in written and model_type in HIDDEN_STATE_LOSS_MODELS:
        training.loss = "fused"
        chosen.append("loss fused")
    if "kernels" not in written and not training.compile and not recipe.quantised_base and model_type in liger_model_types():
        training.kernels = "liger"
        chosen.append("kernels liger")
    return chosen


def speed_settings(recipe: Any, chosen: list[str] | None) -> dict[str, Any]:
    """The switches as they will run, for the plan (``speed: auto`` and what it chose); empty when every
    switch is off, as it is by default."""
    training, data = recipe.training, recipe.data
    if getattr(training, "speed", "off") == "off" and (training.loss, training.kernels, training.compile) == ("standard", "none", False):
        return {}
    settings: dict[str, Any] = {"loss": training.loss, "kernels": training.kernels, "compile": training.compile,
                                "packing": getattr(data, "packing", False)}
    if getattr(training, "speed", "off") == "auto":
        settings = {"speed": f"auto ({', '.join(chosen) if chosen else 'nothing measured faster here'})", **settings}
    return settings


def smoke_switches(recipe: Any, device: str | None, log: Any) -> None:
    """``--smoke`` off CUDA: the CUDA-only switches give way to their any-device forms, said in the log."""
    if device in ("cuda", None):
        return
    training, model = recipe.training, recipe.model
    changes = []
    if training.kernels == "liger":
        training.kernels = "none"
        changes.append("kernels liger -> none")
    if training.loss == "fused":
        training.loss = "chunked"
        changes.append("loss fused -> chunked")
    if model.attn_implementation == "flash_attention_2":
        model.attn_implementation = "sdpa"
        changes.append("attention flash_attention_2 -> sdpa")
    if changes:
        log(f"smoke run on {device}: {', '.join(changes)}")


def causal_lm_of(model: torch.nn.Module) -> torch.nn.Module:
    """The Transformers model itself, also under PEFT's wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def apply_switches(model: torch.nn.Module, recipe: Any) -> dict[str, Any]:
    """Apply the recipe's switches to the (frozen, possibly PEFT-wrapped) model; their states by name."""
    training = recipe.training
    causal_lm = causal_lm_of(model)
    if training.kernels == "liger":
        apply_liger_kernels(causal_lm)
    if training.loss != "standard":
        install_hidden_state_loss(causal_lm, fused=training.loss == "fused")
    return {"attention": causal_lm.config._attn_implementation, "loss": training.loss, "kernels": training.kernels}


def apply_liger_kernels(causal_lm: torch.nn.Module) -> None:
    """Liger's RMSNorm, RoPE and SwiGLU in the model's layers; the loss stays the ``loss`` switch's."""
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN, _apply_liger_kernel_to_instance

    model_type = causal_lm.config.model_type
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        supported = ", ".join(sorted(t for t in MODEL_TYPE_TO_APPLY_LIGER_FN if t))
        raise RecipeRuntimeError(("training", "kernels"), f"Liger has no kernels for {model_type} models "
                                                          f"(it has for: {supported}); set kernels: none")
    _apply_liger_kernel_to_instance(model=causal_lm, rope=True, rms_norm=True, swiglu=True,
                                    cross_entropy=False, fused_linear_cross_entropy=False)


def output_linear(causal_lm: torch.nn.Module) -> torch.nn.Linear:
    """The output layer as a plain linear layer (a head trained in full under LoRA is PEFT's copy)."""
    head = causal_lm.get_output_embeddings()
    copies = getattr(head, "modules_to_save", None)
    if copies is not None:
        head = copies[head.active_adapter if isinstance(head.active_adapter, str) else head.active_adapter[0]]
    if type(head) is not torch.nn.Linear:
        raise RecipeRuntimeError(("training", "loss"), f"the output layer is a {type(head).__name__} (adapted or quantised), "
                                                       "which a loss from the hidden states would bypass; use loss: standard")
    return head


def install_hidden_state_loss(causal_lm: torch.nn.Module, *, fused: bool) -> None:
    """Make the output layer pass hidden states through in training, and the loss read them (once)."""
    if isinstance(causal_lm.loss_function, HiddenStateLoss):
        return
    model_type = causal_lm.config.model_type
    if model_type not in HIDDEN_STATE_LOSS_MODELS:
        raise RecipeRuntimeError(("training", "loss"), f"a loss from the hidden states is tested for "
                                                       f"{', '.join(HIDDEN_STATE_LOSS_MODELS)} models, not {model_type}; "
                                                       "use loss: standard")
    head = output_linear(causal_lm)
    owner = causal_lm.get_output_embeddings()  # what the model calls: PEFT's wrapper, or the layer itself
    plain_loss = causal_lm.loss_function
    owner.forward = MethodType(_passthrough_in_training(type(owner).forward), owner)
    causal_lm.loss_function = HiddenStateLoss(head, owner, plain_loss, fused=fused)


def _passthrough_in_training(forward: Any) -> Any:
    def forward_or_pass(self: torch.nn.Module, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return hidden_states if self.training else forward(self, hidden_states, *args, **kwargs)

    return forward_or_pass


class HiddenStateLoss:
    """``loss_function`` of a model whose output layer passes hidden states through while training.

    Same contract as Transformers' causal-LM loss: labels are shifted by one (or ``shift_labels`` given),
    ``-100`` is ignored, and the sum is divided by ``num_items_in_batch`` when given, else by the
    counted tokens. Only counted tokens reach the output layer: a prompt's positions cost nothing.
    """

    def __init__(self, head: torch.nn.Linear, owner: torch.nn.Module, plain: Any, *, fused: bool) -> None:
        self.head, self.owner, self.plain, self.fused = head, owner, plain, fused

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, vocab_size: int | None = None,
                 num_items_in_batch: torch.Tensor | int | None = None, ignore_index: int = IGNORE_INDEX,
                 shift_labels: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if not self.owner.training:  # eval mode: the layer made real logits
            return self.plain(logits, labels, vocab_size=vocab_size, num_items_in_batch=num_items_in_batch,
                              ignore_index=ignore_index, shift_labels=shift_labels, **kwargs)
        hidden = logits
        if shift_labels is None:
            shift_labels = torch.nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
        targets = shift_labels.reshape(-1).to(hidden.device)
        counted = targets != ignore_index
        kept = hidden.reshape(-1, hidden.shape[-1])
        if hidden.device.type != "meta":  # `ftrecipe plan` traces on meta: every token counts there (the worst case)
            kept, targets = kept[counted], targets[counted]
        if self.fused:
            from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

            total = LigerFusedLinearCrossEntropyLoss(reduction="sum")(self.head.weight, kept, targets, self.head.bias)
        else:
            total = linear_cross_entropy(kept, self.head.weight, targets, self.head.bias)
        if num_items_in_batch is None:
            return total / counted.sum()
        if torch.is_tensor(num_items_in_batch):
            num_items_in_batch = num_items_in_batch.to(total.device)
        return total / num_items_in_batch
