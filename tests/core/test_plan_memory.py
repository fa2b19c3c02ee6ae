"""The plan's static memory is the libraries' allocation, byte for byte; its activations follow what
autograd saves (fused attention, gradient checkpointing) on a meta-device trace."""

from __future__ import annotations

import pytest
import torch

from ftrecipe.plan.memory import ParamInfo, Settings, quantized_bytes, static_bytes
from ftrecipe.plan.probe import measure_step


def settings(**changes) -> Settings:
    base = dict(precision="fp32", optimizer="adamw", batch_size=1, gradient_checkpointing=False, world=1,
                strategy="ddp", zero_stage=2, cuda=False)
    return Settings(**{**base, **changes})


def infos(model: torch.nn.Module) -> list[ParamInfo]:
    return [ParamInfo(name=n, top=n.split(".")[0], numel=p.numel(), itemsize=p.element_size(), trainable=p.requires_grad,
                      shape=tuple(p.shape)) for n, p in model.named_parameters()]


def stepped(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    model(torch.randn(3, 64).to(next(model.parameters()).dtype)).float().pow(2).mean().backward()
    optimizer.step()
    return measure_step([model], optimizer)


def toy(dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.LayerNorm(96), torch.nn.Linear(96, 8))
    model[1].weight.requires_grad_(False)  # a frozen tensor has no gradient and no state
    return model.to(dtype)


@pytest.mark.parametrize("name, dtype", [("adamw", torch.float32), ("adamw", torch.bfloat16), ("sgd", torch.float32),
                                         ("adafactor", torch.float32), ("adafactor", torch.bfloat16)])
def test_optimizer_states_are_the_bytes_the_optimizer_allocates(name, dtype):
    from transformers.optimization import Adafactor

    model = toy(dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = {"adamw": lambda: torch.optim.AdamW(params), "sgd": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9),
                 "adafactor": lambda: Adafactor(params, lr=1e-3, relative_step=False, scale_parameter=False)}[name]()
    measured = stepped(model, optimizer)
    expected = static_bytes(infos(model), settings(optimizer=name))
    assert measured["optimizer"] == expected["optimizer"] > 0
    assert measured["gradients"] == expected["gradients"]
    assert measured["weights"] == expected["weights"]


@pytest.mark.parametrize(("name", "kind"), [("adamw-8bit", "AdamW8bit"), ("paged-adamw-8bit", "PagedAdamW8bit")])
def test_8bit_adamw_states_match_bitsandbytes(name, kind):
    """The paged optimizer keeps the same states (in memory CUDA may page out): counted alike."""
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is the quantization extra")
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Linear(96, 8))  # 6144 weights: 8-bit; the rest 32-bit
    try:
        measured = stepped(model, getattr(bnb.optim, kind)(model.parameters()))
    except (RuntimeError, NotImplementedError) as error:  # pragma: no cover - a bitsandbytes build without CPU kernels
        pytest.skip(f"this bitsandbytes build has no CPU {kind}: {error}")
    assert measured["optimizer"] == static_bytes(infos(model), settings(optimizer=name))["optimizer"]


@pytest.mark.parametrize("double_quant", [True, False])
def test_4bit_weights_are_the_bytes_bitsandbytes_holds(double_quant):
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is the quantization extra")
    layer = bnb.nn.Linear4bit(300, 200, bias=True, compute_dtype=torch.bfloat16, compress_statistics=double_quant,
                              quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(torch.randn(200, 300).to(torch.bfloat16), requires_grad=False,
                                     compress_statistics=double_quant, quant_type="nf4")
    layer = layer.to("cpu")
    measured = measure_step([layer], torch.optim.SGD([layer.bias], lr=0.1))  # the bias trains, as under LoRA's bias: all
    assert measured["weights"] == quantized_bytes(200 * 300, 200, 4, double_quant) + 200 * layer.bias.element_size()


def test_sharding_and_ddp_split_the_static_part():
    from ftrecipe.plan.measure import Trace
    from ftrecipe.plan.memory import ActivationFit, estimate

    params = infos(toy())
    fit = ActivationFit.from_traces(Trace(batch_size=1), Trace(batch_size=2))
    single = estimate(params, fit, {}, settings()).breakdown
    ddp = estimate(params, fit, {}, settings(world=4)).breakdown
    zero2 = estimate(params, fit, {}, settings(world=4, strategy="deepspeed", zero_stage=2)).breakdown
    fsdp = estimate(params, fit, {}, settings(world=4, strategy="fsdp")).breakdown
    assert ddp["weights"] == single["weights"] and ddp["ddp_buckets"] == single["gradients"]
    assert zero2["weights"] == single["weights"] and zero2["optimizer"] == -(-single["optimizer"] // 4)
    assert zero2["gradients"] == -(-single["gradients"] // 4)
    assert fsdp["weights"] == -(-single["weights"] // 4) and "fsdp_gather" in fsdp


# ------------------------------------------------------------------------------ the trace


class _TinyTask:
    """Just enough of a task for the trace: a tiny LLaMA forward with labels."""

    def __init__(self, length: int) -> None:
        self.length = length

    def plan_forward(self, model: torch.nn.Module, batch_size: int) -> torch.Tensor:
        ids = torch.zeros(batch_size, self.length, dtype=torch.long, device="meta")
        return model(input_ids=ids, labels=ids).loss


def tiny_llama(attention: str) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=300, attn_implementation=attention)
    with torch.device("meta"):
        return LlamaForCausalLM(config).train()


def traced(attention: str, length: int):
    from ftrecipe.plan.measure import trace_forward

    model = tiny_llama(attention)
    units = [f"model.layers.{i}" for i in range(3)]
    return trace_forward(_TinyTask(length), model, 1, units, ["lm_head"])


def test_fused_attention_saves_no_attention_matrix():
    sdpa_short, sdpa_long = traced("sdpa", 128), traced("sdpa", 512)
    eager_long = traced("eager", 512)
    per_unit = lambda t: sum(t.units.values())  # noqa: E731
    assert per_unit(sdpa_long) <= 4.2 * per_unit(sdpa_short)  # linear in the length
    assert per_unit(eager_long) - per_unit(sdpa_long) > 0.9 * 3 * 4 * 512 * 512 * 4  # eager keeps (heads, s, s) probabilities
    assert sdpa_long.flops > 4 * sdpa_short.flops * 0.9


def test_loss_and_logits_are_told_apart_and_checkpointing_keeps_unit_inputs():
    from ftrecipe.plan.memory import ActivationFit

    trace = traced("sdpa", 256)
    assert trace.head >= 256 * 300 * 4  # the float32 log-softmax over the vocabulary
    assert set(trace.units) == {"model.layers.0", "model.layers.1", "model.layers.2"}
    fit = ActivationFit.from_traces(trace, trace)  # one shape: the batch-1 numbers as they are
    full, checkpointed = fit.activations(1, False), fit.activations(1, True)
    assert checkpointed < full
    assert checkpointed >= trace.unit_inputs + max(trace.units.values())


def test_fsdp_gather_follows_the_units_the_runner_shards():
    """The plan's FSDP units are the runner's (each layer of a stack, and the root); what is held
    gathered is the root's weights, two layers (one prefetched) in the compute dtype and one layer's fp32
    gradients; the save gathers the whole model on the first process's host, next to its unsharded copy."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftrecipe.plan.memory import fsdp_gathered_bytes, fsdp_unit, save_gather_host_bytes
    from ftrecipe.runner.speed import repeated_blocks

    model = LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                         num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False))
    blocks = {id(m) for m in repeated_blocks(model)}
    sharded_units = {name for name, module in model.named_modules() if id(module) in blocks}
    params = infos(model)
    assert {fsdp_unit(p.name) for p in params} - {""} == sharded_units == {f"model.layers.{i}" for i in range(3)}
    layer = sum(p.numel() for p in model.model.layers[0].parameters())
    root = sum(p.numel for p in params if not p.name.startswith("model.layers."))
    assert fsdp_gathered_bytes(params, settings(precision="bf16-mixed")) == 2 * root + 2 * 2 * layer + 4 * layer
    assert fsdp_gathered_bytes(params, settings()) == 4 * root + 2 * 4 * layer + 4 * layer
    assert save_gather_host_bytes(params) == 2 * 4 * sum(p.numel() for p in model.parameters())
