"""The plugin contract as `ftrecipe validate` enforces it: no recipe key is accepted that nothing reads,
modalities extend the shared sections with keys of their own, and a misspelt key that selects a plugin
is reported at its own line."""

from __future__ import annotations

import pytest

from ftrecipe.plugin import EvaluationSection, Modality, ModelSection, TrainingSection
from ftrecipe.registry import record_problems
from tests.core.test_validate import check, texts

TOY = "model:\n  modality: toy-regression\n  base: scratch\n  init: scratch\ndata:\n  format: synthetic\n"
LM = "model:\n  modality: causal-lm\n  base: llama\n  init: scratch\ndata:\n  format: jsonl\n  train: t.jsonl\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (TOY + "head:\n  mode: replace\n  labels: [a, b]\n",
         "r.yaml:7:1: head: not read by the 'toy-regression' modality: the toy has one fixed output; remove it"),
        (TOY + "  eval: e.jsonl\n", "r.yaml:7:3: data.eval: not read by data format 'synthetic': the examples are generated; remove it"),
        (LM + "  augment:\n    - name: noise\n",
         "r.yaml:8:3: data.augment: no augmentation is registered for the 'causal-lm' modality; remove it"),
        (LM + "head:\n  mode: keep\n", "r.yaml:8:1: head: not read by the 'causal-lm' modality: a causal LM keeps its"),
        ("model:\n  modality: whisper\n  base: openai/whisper-tiny\n  quantization: {bits: 4}\nfreeze:\n  strategy: lora\n"
         "data:\n  format: manifest\n  train: m.csv\n",
         "r.yaml:4:3: model.quantization: not read by the 'whisper' modality: the Whisper plugin trains on full-precision"),
    ],
)
def test_a_key_nothing_reads_is_rejected_at_its_line(example_registry, text, expected):
    result = check(text, example_registry)
    assert not result.ok
    assert any(t.startswith(expected) for t in texts(result)), texts(result)


def test_an_unread_key_set_on_the_command_line_is_blamed_on_the_argument(example_registry):
    result = check(TOY, example_registry, overrides=["head.mode=replace"])
    assert texts(result) == ["--set head.mode=replace: head: not read by the 'toy-regression' modality: "
                             "the toy has one fixed output; remove it"]


def test_defaults_of_unread_keys_are_not_errors(example_registry):
    """Only what a recipe writes is refused: the shared sections' defaults stay valid for every modality."""
    assert check(TOY, example_registry).ok
    assert check(TOY + "data_unused: 1\n", example_registry).ok is False


def test_a_modality_extends_a_shared_section_with_its_own_keys(example_registry):
    generation = "evaluation:\n  generation: {max_new_tokens: 8}\n"
    assert check(LM + generation, example_registry).ok
    classifier = ("model:\n  modality: text-classification\n  base: bert\n  init: scratch\n"
                  "head:\n  mode: replace\n  labels: [a, b]\ndata:\n  format: synthetic\n")
    assert check(classifier, example_registry).ok
    result = check(classifier + generation, example_registry)
    assert texts(result) == ["r.yaml:11:3: evaluation.generation: unknown key 'generation'"]
    assert check(LM + generation, example_registry).recipe.evaluation.generation.max_new_tokens == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("modell:\n  modality: toy-regression\n  base: scratch\ndata:\n  format: synthetic\n",
         ["r.yaml:1:1: modell: unknown key 'modell' (did you mean 'model'?)"]),
        ("model:\n  modalityx: toy-regression\n  base: scratch\ndata:\n  format: synthetic\n",
         ["r.yaml:2:3: model.modalityx: unknown key 'modalityx' (did you mean 'modality'?)"]),
        ("data:\n  format: synthetic\n", ["r.yaml:1:1: model: missing required section 'model'"]),
        ("trainng:\n  epochs: 1\ndata:\n  format: synthetic\n",
         ["r.yaml:1:1: trainng: unknown key 'trainng' (did you mean 'training'?)", "r.yaml:1:1: model: missing required section 'model'"]),
    ],
)
def test_a_misspelt_key_that_selects_a_plugin_is_reported_where_it_is(example_registry, text, expected):
    assert texts(check(text, example_registry)) == expected


def _modality(**fields) -> Modality:
    class EchoModel(ModelSection):
        pass

    return Modality(name="echo", section=EchoModel, task="echo:Task", **fields)


def test_a_record_that_misdeclares_what_it_reads_is_a_plugin_error():
    assert record_problems(_modality(ignores={"training.optimizer": "", "head": ""})) == []
    assert record_problems(_modality(ignores={"training.optimiser": ""})) == [
        "Modality 'echo': ignores names 'training.optimiser', which is no key of a recipe's shared sections"]

    class Extra(EvaluationSection):
        pass

    assert record_problems(_modality(sections={"evaluation": Extra})) == []
    assert record_problems(_modality(sections={"training": Extra})) == [
        "Modality 'echo': sections['training'] must subclass ftrecipe.plugin.TrainingSection"]
    assert "a modality may extend" in record_problems(_modality(sections={"data": TrainingSection}))[0]


def test_a_head_mode_a_modality_cannot_honour_is_refused():
    text = ("model:\n  modality: text-classification\n  base: bert\n  init: scratch\n"
            "head:\n  mode: append\n  labels: [a, b]\ndata:\n  format: synthetic\n")
    assert texts(check(text, None)) == [
        "r.yaml:6:9: head.mode: text-classification puts a new classifier in place of the model's head; use head.mode replace"]
