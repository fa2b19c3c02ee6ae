"""The causal LM's speed switches (issue 13): the loss without full logits gives the standard loss and
gradients, packing for FlashAttention's variable-length kernel gives the padded rows' loss, Liger's
kernels go in after the LoRA wrap, and a switch this machine cannot honour is a located exit 2."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, FalconConfig, LlamaConfig, MistralConfig, Qwen2Config

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe_text.chunked_loss import chunk_tokens, linear_cross_entropy
from ftrecipe_text.packing import flattened_collate, pack_examples, packed_collate
from ftrecipe_text.speed import HIDDEN_STATE_LOSS_MODELS, apply_liger_kernels, install_hidden_state_loss
from ftrecipe_text.tokenization import TokenizedExample
from tests.conftest import ROOT, run_cli
from tests.plugins.text.test_runs import llama_dir, sft_recipe  # noqa: F401 - llama_dir is a fixture

VOCAB = 300
SMALL = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
CONFIGS = {
    "llama": lambda: LlamaConfig(**SMALL, intermediate_size=64, num_key_value_heads=2),
    "mistral": lambda: MistralConfig(**SMALL, intermediate_size=64, num_key_value_heads=2),
    "qwen2": lambda: Qwen2Config(**SMALL, intermediate_size=64, num_key_value_heads=2),
    "falcon": lambda: FalconConfig(**SMALL),
}


def tiny_lm(model_type: str = "llama", **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = CONFIGS[model_type]()
    for key, value in overrides.items():
        setattr(config, key, value)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")


def batch(rows: int = 2, length: int = 17) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (rows, length), generator=generator)
    labels = ids.clone()
    labels[:, :5] = -100  # the prompt: no loss there
    labels[-1, length - 4:] = -100  # padding
    return {"input_ids": ids, "labels": labels}


def loss_and_grads(model: torch.nn.Module, inputs: dict) -> tuple[float, dict[str, torch.Tensor]]:
    model.train()
    loss = model(**inputs).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(reference: tuple[float, dict], candidate: tuple[float, dict]) -> None:
    assert candidate[0] == pytest.approx(reference[0], rel=1e-5)
    assert candidate[1].keys() == reference[1].keys() and reference[1]
    for name, grad in reference[1].items():
        torch.testing.assert_close(candidate[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


# -- the loss without the full logits ------------------------------------------------------------
def test_every_admitted_model_type_is_tested():
    assert set(HIDDEN_STATE_LOSS_MODELS) == set(CONFIGS)


@pytest.mark.parametrize("model_type", sorted(CONFIGS))
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_chunked_loss_gives_the_standard_loss_and_gradients(model_type, tied):
    plain = tiny_lm(model_type, tie_word_embeddings=tied)
    chunked = copy.deepcopy(plain)
    install_hidden_state_loss(chunked, fused=False)
    inputs = batch()
    assert_same(loss_and_grads(plain, inputs), loss_and_grads(chunked, inputs))
    assert chunked(**inputs).logits.shape[-1] == 32  # training: the hidden states, never tokens x vocabulary
    chunked.eval()
    plain.eval()
    with torch.no_grad():  # evaluation and generation get real logits, and the standard loss
        torch.testing.assert_close(chunked(**inputs).logits, plain(**inputs).logits)
        assert chunked(**inputs).loss.item() == pytest.approx(plain(**inputs).loss.item(), rel=1e-6)


def test_chunked_loss_under_lora_and_with_a_head_trained_in_full():
    from peft import LoraConfig, get_peft_model

    for extra in ({}, {"modules_to_save": ["lm_head"]}):
        config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, **extra)
        plain = get_peft_model(tiny_lm(), config)
        chunked = copy.deepcopy(plain)
        install_hidden_state_loss(chunked.get_base_model(), fused=False)
        reference = loss_and_grads(plain, batch())
        assert any("lora_B" in name for name in reference[1])
        assert any("modules_to_save" in name for name in reference[1]) == bool(extra)
        assert_same(reference, loss_and_grads(chunked, batch()))


def test_linear_cross_entropy_matches_torch_for_any_chunk_with_a_bias():
    torch.manual_seed(0)
    hidden = torch.randn(11, 8, requires_grad=True)
    weight = torch.randn(50, 8, requires_grad=True)
    bias = torch.randn(50, requires_grad=True)
    labels = torch.randint(0, 50, (11,))
    expected = torch.nn.functional.cross_entropy(hidden @ weight.t() + bias, labels, reduction="sum")
    wanted = torch.autograd.grad(expected * 0.5, (hidden, weight, bias))
    for chunk in (1, 4, 11, 64):
        got = linear_cross_entropy(hidden, weight, labels, bias, chunk=chunk)
        assert got.item() == pytest.approx(expected.item(), rel=1e-5)
        for a, b in zip(torch.autograd.grad(got * 0.5, (hidden, weight, bias)), wanted):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert chunk_tokens(4096, 32000, 4096) == 512  # a chunk's logits about the size of the hidden states
    empty = linear_cross_entropy(hidden[:0], weight, labels[:0])
    assert empty.item() == 0 and empty.requires_grad


def test_a_model_type_not_tested_is_refused_naming_the_key():
    from transformers import GPT2Config

    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=4))
    with pytest.raises(RecipeRuntimeError) as error:
        install_hidden_state_loss(model, fused=False)
    assert error.value.path == ("training", "loss") and "gpt2" in error.value.message


# -- packing for FlashAttention's variable-length kernel ---------------------------------------------
def test_flattened_packing_gives_the_padded_rows_loss():
    """One row without padding (what flash_attention_2 reads) against padded packed rows, under SDPA
    (Transformers separates the examples by their position ids in both layouts)."""
    generator = torch.Generator().manual_seed(2)
    examples = []
    for length in (7, 12, 5, 9, 14, 3):
        ids = torch.randint(3, VOCAB, (length,), generator=generator).tolist()
        examples.append(TokenizedExample(input_ids=ids, labels=[-100] * 2 + ids[2:]))
    rows = pack_examples(examples, 20)
    padded, flat = packed_collate(rows, pad_id=0), flattened_collate(rows)
    assert flat["input_ids"].shape == (1, sum(len(e) for e in examples))
    assert flat["position_ids"][0].tolist() == [p for row in rows for p in row.position_ids]
    model = tiny_lm()
    assert model(**flat).loss.item() == pytest.approx(model(**padded).loss.item(), rel=1e-5)


# -- Liger's kernels ------------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="liger-kernel is not installed (ftrecipe[gpu])")
def test_liger_kernels_replace_the_layer_forwards_after_the_lora_wrap(monkeypatch):
    """Applied the way the runner does (after the freeze plan): the norms and MLPs take Liger's forwards,
    the LoRA-wrapped projections stay, and nothing else about the parameters changes. (The kernels
    themselves run on CUDA only.)"""
    from transformers.models.llama import modeling_llama

    # Liger also swaps the modelling module's classes and rotary function, for every LLaMA this process
    # builds after it: undone after this test (a run applies it once, to the one model it trains)
    for name, value in vars(modeling_llama).copy().items():
        monkeypatch.setattr(modeling_llama, name, value)
    from liger_kernel.transformers.rms_norm import LigerRMSNorm
    from liger_kernel.transformers.swiglu import LigerSwiGLUMLP
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_lm(), LoraConfig(r=4, target_modules="all-linear"))
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    apply_liger_kernels(model.get_base_model())
    layer = model.get_base_model().model.layers[0]
    assert layer.mlp.forward.__func__ is LigerSwiGLUMLP.forward
    assert layer.input_layernorm.forward.__func__ is LigerRMSNorm.forward
    assert type(layer.mlp.gate_proj).__module__.startswith("peft")
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before
    with pytest.raises(RecipeRuntimeError) as error:
        apply_liger_kernels(tiny_lm("falcon"))
    assert error.value.path == ("training", "kernels") and "falcon" in error.value.message


# -- refused where this machine cannot honour a switch ------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA refuses")
@pytest.mark.parametrize(("setting", "key", "says"), [
    ("training.kernels=liger", "training.kernels", "CUDA only"),
    ("training.loss=fused", "training.loss", "CUDA only"),
    ("model.attn_implementation=flash_attention_2", "model.attn_implementation", "CUDA only"),
    ("training.optimizer=paged-adamw-8bit", "training.optimizer", "CUDA memory"),
])
def test_a_cuda_switch_on_a_cpu_is_a_located_exit_2(tmp_path, llama_dir, capsys, setting, key, says):
    """In this process (the refusal comes before any data or model is loaded); nothing is written."""
    from ftrecipe.cli import main

    recipe = sft_recipe(tmp_path, llama_dir, "  strategy: full\n").read_text().replace("  accelerator: cpu\n", "  accelerator: auto\n")
    (tmp_path / "r.yaml").write_text(recipe)
    assert main(["run", str(tmp_path / "r.yaml"), "--set", setting, "--output", str(tmp_path / "run")]) == 2
    (message,) = capsys.readouterr().err.strip().splitlines()
    assert message.startswith(f"--set {setting}: {key}: ") and says in message
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e
def test_smoke_runs_a_cuda_recipe_here_and_says_what_gave_way(tmp_path, llama_dir):
    recipe = sft_recipe(tmp_path, llama_dir, "  strategy: full\n",
                        extra="").read_text().replace("  log_every: 1\n", "  log_every: 1\n  kernels: liger\n  loss: fused\n  speed: auto\n")
    (tmp_path / "r.yaml").write_text(recipe.replace("  accelerator: cpu\n", "  accelerator: auto\n"))
    result = run_cli("run", str(tmp_path / "r.yaml"), "--smoke", "--output", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-2000:]
    if not torch.cuda.is_available():
        assert "kernels liger -> none, loss fused -> chunked" in result.stdout + result.stderr
        speed = json.loads((tmp_path / "run" / "run.json").read_text())["speed"]
        assert speed == {"compile": False, "optimizer": "adamw", "speed": "auto (nothing measured faster here)",
                         "attention": "sdpa", "loss": "chunked", "kernels": "none"}


# -- what the speed benchmark builds on --------------------------------------------------------------
def test_a_scratch_model_takes_the_named_tokenizer_and_attention(tmp_path, tokenizer):
    """``init: scratch`` with ``model.tokenizer``: the model is random, the tokenizer (and so the vocabulary
    the logits span) is the named one, as bench/speed_ab.py needs for a real-sized vocabulary."""
    from tests.plugins.text.test_plan import task_of

    tokenizer.save_pretrained(tmp_path / "tok")
    recipe = sft_recipe(tmp_path, "llama", "  strategy: full\n").read_text().replace(
        "  base: llama\n", f"  base: llama\n  init: scratch\n  tokenizer: {tmp_path / 'tok'}\n  attn_implementation: eager\n")
    (tmp_path / "r.yaml").write_text(recipe)
    task = task_of(tmp_path / "r.yaml", tmp_path)
    task.build_data()
    model = task.build_model()
    assert task.tokenizer.get_vocab() == tokenizer.get_vocab()
    assert model.get_output_embeddings().out_features == len(tokenizer)
    assert model.config._attn_implementation == "eager"


def test_liger_on_a_quantised_base_is_refused_until_measured():
    from ftrecipe.validation import validate_file
    from tests.conftest import ROOT

    result = validate_file(ROOT / "recipes" / "llama2-7b-sql-qlora.yaml", overrides=["training.kernels=liger"])
    assert [d.text() for d in result.diagnostics] == [
        "--set training.kernels=liger: training.kernels: Liger's kernels are not measured on a quantised base yet "
        "(bench/gpu_speed.sh measures LoRA); use kernels: none with QLoRA"]
    assert validate_file(ROOT / "recipes" / "llama2-7b-sql-qlora.yaml", overrides=["training.loss=fused"]).ok


def test_compile_with_liger_kernels_is_refused_at_validation_naming_both_keys(tmp_path, llama_dir, capsys):
    """The pair crashed on an H200 after the model had loaded (Dynamo inside Liger's RMSNorm): now it never starts."""
    from ftrecipe.cli import main

    recipe = sft_recipe(tmp_path, llama_dir, "  strategy: lora\n")
    code = main(["validate", str(recipe), "--set", "training.kernels=liger", "--set", "training.compile=true"])
    assert code == 2
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "training.compile:" in line]
    assert line.startswith("--set training.compile=true: training.compile: training.compile with training.kernels: liger")
    assert main(["validate", str(recipe), "--set", "training.kernels=liger"]) == 0
    assert main(["validate", str(recipe), "--set", "training.compile=true"]) == 0


AUTO = "  speed: auto\n"


def auto_recipe(tmp_path, llama_dir, strategy="  strategy: lora\n", *sets):
    from ftrecipe.validation import validate_file

    recipe = sft_recipe(tmp_path, llama_dir, strategy)
    result = validate_file(recipe, overrides=["training.speed=auto", *sets])
    assert result.ok, [d.text() for d in result.diagnostics]
    return result.recipe


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="speed: auto picks Liger only where it is installed")
def test_speed_auto_resolves_to_the_measured_set_on_cuda_and_written_keys_win(tmp_path, llama_dir):
    from ftrecipe_text.speed import resolve_speed

    recipe = auto_recipe(tmp_path, llama_dir)
    assert resolve_speed(recipe, "cuda", "llama") == ["loss fused", "kernels liger"]
    assert (recipe.training.loss, recipe.training.kernels, recipe.training.compile) == ("fused", "liger", False)
    written = auto_recipe(tmp_path, llama_dir, "  strategy: lora\n", "training.loss=chunked")
    assert resolve_speed(written, "cuda", "llama") == ["kernels liger"] and written.training.loss == "chunked"
    compiled = auto_recipe(tmp_path, llama_dir, "  strategy: lora\n", "training.compile=true")
    assert resolve_speed(compiled, "cuda", "llama") == ["loss fused"]  # never the pair that crashed
    quantised = auto_recipe(tmp_path, llama_dir, "  strategy: qlora\n", "hardware.precision=bf16-mixed")
    assert resolve_speed(quantised, "cuda", "llama") == ["loss fused"]  # Liger's kernels: not measured on 4-bit
    assert resolve_speed(auto_recipe(tmp_path, llama_dir), "cuda", "gpt2") == []  # neither is tested for gpt2


def test_speed_auto_changes_nothing_where_nothing_was_measured_faster(tmp_path, llama_dir):
    from ftrecipe_text.speed import resolve_speed

    for device in ("cpu", "mps", None):
        recipe = auto_recipe(tmp_path, llama_dir)
        assert resolve_speed(recipe, device, "llama") == []
        assert (recipe.training.loss, recipe.training.kernels) == ("standard", "none")
    off = sft_recipe(tmp_path, llama_dir, "  strategy: lora\n")
    from ftrecipe.validation import validate_file

    plain = validate_file(off).recipe
    assert resolve_speed(plain, "cuda", "llama") == []


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="speed: auto picks Liger only where it is installed")
def test_the_plan_shows_what_speed_auto_resolves_to_for_the_recipes_gpu(capsys):
    """The shipped LLaMA-2 QLoRA recipe asks for speed: auto on CUDA: the plan counts and shows the fused loss."""
    import json

    from ftrecipe.cli import main

    assert main(["plan", str(ROOT / "recipes" / "llama2-7b-sql-qlora.yaml"), "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["speed"]["speed"] == "auto (loss fused)" and plan["speed"]["loss"] == "fused"
    assert plan["memory"]["breakdown"]["logits_and_loss"] < 100 << 20  # without the 1 GiB of full logits
