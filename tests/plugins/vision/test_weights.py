"""Pre-trained torchvision weights: the builder table, torch's cache, local files, and the offline message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from ftrecipe.plugin import RecipeRuntimeError  # noqa: E402
from ftrecipe_vision import pretrained, weights_table  # noqa: E402


def test_the_builder_table_is_what_the_installed_torchvision_has() -> None:
    shipped = json.loads(weights_table.TABLE.read_text(encoding="utf-8"))
    assert shipped == weights_table.current(), "run `python -m ftrecipe_vision.weights_table` and commit the table"
    assert "resnet50" in weights_table.of_kind("classification")
    assert {"fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2"} <= set(weights_table.of_kind("detection"))


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(pretrained, "download_reachable", lambda: False)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_an_entry_in_torchs_cache_loads_without_a_download(offline_cache: Path, tmp_path: Path) -> None:
    import torchvision

    model = torchvision.models.resnet18(num_classes=1000)
    offline_cache.mkdir(parents=True)
    torch.save(model.state_dict(), offline_cache / "resnet18-f37072fd.pth")  # the name torchvision downloads it as
    assert pretrained.hub_checkpoints() == offline_cache
    assert list(pretrained.weights_problems("resnet18", "DEFAULT", tmp_path)) == []
    state, meta = pretrained.load_weights("DEFAULT", builder="resnet18", base_dir=tmp_path)
    assert torch.equal(state["fc.weight"], model.state_dict()["fc.weight"])
    assert meta["name"] == "ResNet18_Weights.IMAGENET1K_V1" and len(meta["categories"]) == 1000
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["crop_size"] == [224]


def test_offline_and_absent_says_how_to_fetch(offline_cache: Path, tmp_path: Path) -> None:
    [problem] = pretrained.weights_problems("resnet50", "IMAGENET1K_V2", tmp_path)
    assert problem.path == ("model", "weights")
    assert "get_weight('ResNet50_Weights.IMAGENET1K_V2')" in problem.message and "resnet50-11ad3fa6.pth" in problem.message
    with pytest.raises(RecipeRuntimeError, match="not in torch's cache"):
        pretrained.load_weights("IMAGENET1K_V2", builder="resnet50", base_dir=tmp_path)
    [wrong] = pretrained.weights_problems("resnet50", "COCO_V1", tmp_path)
    assert "resnet50 has no weights 'COCO_V1'" in wrong.message and "IMAGENET1K_V1" in wrong.message


def test_local_files_load_and_pickled_code_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    weights = {"w": torch.arange(4.0)}
    save_file(weights, str(tmp_path / "a.safetensors"))
    torch.save({"model": weights, "epoch": 3}, tmp_path / "checkpoint.pth")  # torchvision's reference scripts' layout
    for name in ("a.safetensors", "checkpoint.pth"):
        state, _ = pretrained.load_weights(name, builder="resnet18", base_dir=tmp_path)
        assert torch.equal(state["w"], weights["w"])
    torch.save({"model": weights, "hook": print}, tmp_path / "code.pth")  # unpickling it would name a callable
    with pytest.raises(RecipeRuntimeError, match="not a readable weights file"):
        pretrained.load_weights("code.pth", builder="resnet18", base_dir=tmp_path)
    [missing] = pretrained.weights_problems("resnet18", "nowhere/w.pth", tmp_path)
    assert "no weights file at 'nowhere/w.pth'" in missing.message
