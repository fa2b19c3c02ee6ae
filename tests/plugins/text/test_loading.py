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


def test_an_evaluation_before_training_leaves_the_4bit_gradients_as_they_were(tmp_path):
    """On an AVX512-BF16 CPU bitsandbytes repacks a 4-bit weight at its first no-grad eval forward, into a
    layout without a backward (the gradient through the layer is dropped): a QLoRA base as the plugin loads
    it keeps the trainable layout, so the LoRA gradients after the evaluation before training are the ones
    without it."""
    from bitsandbytes.functional import has_avx512bf16
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from ftrecipe_text.loading import _quantised_load
    from tests.plugins.text.test_runs import tiny_checkpoint

    if not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never repacks a 4-bit weight here")
    base = tiny_checkpoint(tmp_path / "llama", "llama")
    nf4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    recipe = SimpleNamespace(model=SimpleNamespace(quantization=nf4))
    model = _quantised_load(AutoModelForCausalLM, str(base), "llama", recipe, quantization_config=nf4, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    ids = torch.randint(3, 200, (2, 12), generator=torch.Generator().manual_seed(0))

    def lora_gradients() -> dict[str, torch.Tensor]:
        model.train()
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}

    before = lora_gradients()
    model.eval()
    with torch.no_grad():
        model(input_ids=ids)
    after = lora_gradients()
    lowest = next(name for name in before if ".layers.0." in name and "lora_B" in name)
    assert before[lowest].abs().sum() > 0  # the gradient reaches the lowest layer through the 4-bit ones above
    assert before.keys() == after.keys() and all(torch.allclose(before[k], after[k]) for k in before)
