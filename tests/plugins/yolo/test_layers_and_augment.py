"""The freeze grammar on Ultralytics' model rows, and the augmentation list as Ultralytics hyperparameters."""

from __future__ import annotations

import pytest

from ftrecipe.plugin import RecipeRuntimeError
from ftrecipe.registry import get_registry
from ftrecipe.validation import validate_text
from ftrecipe_yolo import augment
from ftrecipe_yolo.layers import Blocks, freeze_list

RECIPE = """
model: {modality: yolo, base: yolo11n.pt}
data: {format: synthetic}
"""


def recipe(extra: str = ""):
    result = validate_text(RECIPE + extra, source="r.yaml")
    assert result.ok, [d.text() for d in result.diagnostics]
    return result.recipe


@pytest.fixture(scope="module")
def yolo11n():
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel("yolo11n.yaml", nc=3, verbose=False)


def test_blocks_follow_the_model_yaml(yolo11n):
    blocks = Blocks.of(yolo11n)
    assert blocks.backbone == list(range(11)) and blocks.neck == list(range(11, 23)) and blocks.head == [23]
    assert type(yolo11n.model[23]).__name__ == "Detect"


def test_transfer_freezes_the_backbone_and_unfreeze_top_gives_back_its_last_rows(yolo11n):
    plan = recipe("freeze: {strategy: transfer}\n")
    assert freeze_list(plan, yolo11n) == (list(range(11)), {"backbone": list(range(11))})
    top = recipe("freeze: {strategy: transfer, unfreeze_top: 2}\n")
    assert freeze_list(top, yolo11n)[0] == list(range(9))


def test_partial_names_blocks_rows_and_modules(yolo11n):
    plan = recipe('freeze: {strategy: partial, freeze: [neck, "model.23.cv2"], freeze_layers: {stack: backbone, first: 3}}\n')
    rows, frozen = freeze_list(plan, yolo11n)
    assert rows == [0, 1, 2, *range(11, 23), "23.cv2"]
    assert frozen == {"backbone": [0, 1, 2], "neck": list(range(12))}
    globbed = recipe('freeze: {strategy: partial, freeze: ["model.1?"]}\n')
    assert freeze_list(globbed, yolo11n)[0] == list(range(10, 20))


def test_a_freeze_name_that_matches_nothing_is_located(yolo11n):
    plan = recipe('freeze: {strategy: partial, freeze: [backbone, "model.99"]}\n')
    with pytest.raises(RecipeRuntimeError) as caught:
        freeze_list(plan, yolo11n)
    assert caught.value.path == ("freeze", "freeze", 1) and "names no block" in caught.value.message


def test_full_freezes_nothing(yolo11n):
    assert freeze_list(recipe(), yolo11n) == ([], {})


def test_no_augment_list_means_ultralytics_defaults_and_a_list_is_the_whole_truth():
    registry = get_registry()
    assert augment.hyperparameters([], registry, "yolo") == augment.DEFAULTS
    chosen = validate_text(RECIPE.replace("data: {format: synthetic}", "data:\n  format: synthetic\n  augment:\n"
                                          "    - {name: flip, p: 0.3}\n    - {name: hsv, p: 0.5}\n    - {name: mixup}\n"), source="r.yaml")
    assert chosen.ok, [d.text() for d in chosen.diagnostics]
    values = augment.hyperparameters(chosen.recipe.data.augment, registry, "yolo")
    assert values["fliplr"] == 0.3 and values["hsv_h"] == pytest.approx(0.0075) and values["mixup"] == 0.1
    assert values["mosaic"] == values["scale"] == values["translate"] == 0.0  # not listed: off
    assert "fliplr=0.3" in augment.describe(values) and "mosaic" not in augment.describe(values)
