"""Quantised loading: a QLoRA base is really 4-bit, for Falcon too, or the run refuses to start."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe_text.loading import AFFINE_LINEAR_SUBCLASSES, check_quantised, quantisable_linear_layers


def test_falcons_linear_layer_is_the_plain_affine_map_it_is_swapped_for():
    """The swap that lets transformers quantise Falcon changes no maths: FalconLinear == nn.Linear."""
    from transformers.models.falcon.modeling_falcon import FalconLinear

    torch.manual_seed(0)
    falcon = FalconLinear(8, 5, bias=True)
    plain = torch.nn.Linear(8, 5, bias=True)
    plain.load_state_dict(falcon.state_dict())
    x = torch.randn(3, 4, 8)
    torch.testing.assert_close(falcon(x), plain(x))
    assert set(AFFINE_LINEAR_SUBCLASSES) == {"falcon"}


def test_the_swap_lasts_only_while_the_model_is_built():
    from transformers.models.falcon import modeling_falcon

    original = modeling_falcon.FalconLinear
    with quantisable_linear_layers("falcon"):
        assert modeling_falcon.FalconLinear is torch.nn.Linear
    assert modeling_falcon.FalconLinear is original
    with pytest.raises(RuntimeError), quantisable_linear_layers("falcon"):
        raise RuntimeError("loading failed")
    assert modeling_falcon.FalconLinear is original
    with quantisable_linear_layers("llama"):
        assert modeling_falcon.FalconLinear is original


def test_a_base_left_unquantised_is_refused():
    recipe = SimpleNamespace(model=SimpleNamespace(quantization=object()))
    with pytest.raises(RecipeRuntimeError, match="transformers quantised no layer of Sequential") as caught:
        check_quantised(torch.nn.Sequential(torch.nn.Linear(2, 2)), recipe)
    assert caught.value.path == ("model", "quantization")
    check_quantised(torch.nn.Sequential(torch.nn.Linear(2, 2)), SimpleNamespace(model=SimpleNamespace(quantization=None)))
