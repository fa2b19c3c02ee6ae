"""Normalisation calls on meta tensors are computed once per shape (ftrecipe.plan.norms): their outputs are
laid out exactly as computed ones, and autograd saves the same tensors, so the plan's numbers stand."""

from __future__ import annotations

import pytest
import torch

from ftrecipe.plan.norms import RepeatedNorms


def saved_by_step(model: torch.nn.Module, inputs: torch.Tensor, mode: RepeatedNorms | None) -> list[tuple]:
    """Every tensor autograd saves in one forward pass, as (shape, stride, dtype, bytes), and the output's."""
    saved: list[tuple] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append((tuple(tensor.shape), tensor.stride(), tensor.dtype, tensor.untyped_storage().nbytes()))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if mode is None:
            output = model(inputs)
        else:
            with mode:
                output = model(inputs)
    saved.append((tuple(output.shape), output.stride(), output.dtype, output.grad_fn.name()))
    return saved


def layers(kind: str) -> torch.nn.Module:
    norm = {"batch": lambda: torch.nn.BatchNorm2d(8), "group": lambda: torch.nn.GroupNorm(2, 8),
            "layer": lambda: torch.nn.LayerNorm([8, 6, 6])}[kind]
    with torch.device("meta"):  # the same shapes twice, then a new one (a convolution changes the channels)
        return torch.nn.Sequential(norm(), torch.nn.SiLU(), norm(), torch.nn.Conv2d(8, 8, 3, padding=1), norm())


@pytest.mark.parametrize("kind", ["batch", "group", "layer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_repeated_normalisation_is_computed_once_and_saves_what_it_always_saves(kind, dtype):
    model = layers(kind).to(dtype)
    inputs = torch.empty(4, 8, 6, 6, device="meta", dtype=dtype, requires_grad=True)
    mode = RepeatedNorms()
    assert saved_by_step(model, inputs, mode) == saved_by_step(model, inputs, None)
    assert mode.asked == 1  # three calls of one shape


def test_a_channels_last_input_keeps_its_layout_and_a_new_shape_is_computed():
    model = layers("batch")
    mode = RepeatedNorms()
    channels_last = torch.empty(4, 8, 6, 6, device="meta", requires_grad=True).to(memory_format=torch.channels_last)
    assert saved_by_step(model, channels_last, mode) == saved_by_step(model, channels_last, None)
    asked = mode.asked
    contiguous = torch.empty(2, 8, 6, 6, device="meta", requires_grad=True)  # another batch size, another layout
    assert saved_by_step(model, contiguous, mode) == saved_by_step(model, contiguous, None)
    assert mode.asked == asked + 1
    model.eval()  # running statistics: another call, computed once
    assert saved_by_step(model, contiguous, mode) == saved_by_step(model, contiguous, None)
    assert mode.asked == asked + 2


def test_real_tensors_are_always_computed():
    norm = torch.nn.LayerNorm(4)
    mode = RepeatedNorms()
    values = torch.arange(8.0).reshape(2, 4)
    with mode:
        first, second = norm(values), norm(values + 1)
    assert mode.asked == 0
    torch.testing.assert_close(first, second)  # layer norm of a shifted row is the same row
    assert first.abs().sum() > 0
