"""The shared picture helpers (ftrecipe.images through ftrecipe.plugin): upright sizes, checks with reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ftrecipe.plugin import ImageProblem, check_image, draw_shapes, image_files, load_rgb, upright_size


def _photo(path: Path, size=(40, 20), mode="RGB", orientation: int | None = None) -> Path:
    image = Image.new(mode, size, color=0)
    if mode == "RGB":  # a red left edge shows where the stored picture's left went after turning
        pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        pixels[:, :4] = (255, 0, 0)
        image = Image.fromarray(pixels)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes()) if orientation else image.save(path)
    return path


def test_exif_orientation_turns_the_size_and_the_pixels(tmp_path: Path) -> None:
    turned = _photo(tmp_path / "turned.jpg", orientation=6)  # stored 40x20, shown rotated a quarter
    assert check_image(turned) == (20, 40)
    with Image.open(turned) as image:
        assert upright_size(image) == (20, 40)
    upright = load_rgb(turned)
    assert upright.mode == "RGB" and upright.size == (20, 40)
    top = np.asarray(upright)[:3].mean(axis=(0, 1))  # orientation 6: the stored left edge is now on top
    assert top[0] > 150 and top[1] < 80
    assert check_image(_photo(tmp_path / "plain.jpg")) == (40, 20)


@pytest.mark.parametrize(("name", "make", "why"), [
    ("broken.jpg", lambda p: p.write_bytes(b"\xff\xd8\xff not a jpeg"), "not a readable image"),
    ("cut.png", lambda p: p.write_bytes(_photo(p.with_suffix(".tmp.png"), size=(64, 64)).read_bytes()[:80]), "not a readable image"),
    ("tiny.png", lambda p: _photo(p, size=(6, 30)), "too small: 6x30 px, the shorter side must be at least 8 px"),
])
def test_unusable_pictures_are_named_with_the_reason(tmp_path: Path, name: str, make, why: str) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(ImageProblem) as caught:
        check_image(path)
    assert caught.value.path == path and why in caught.value.why and str(path) in str(caught.value)


def test_grey_pictures_pass_unless_colour_is_required(tmp_path: Path) -> None:
    grey = _photo(tmp_path / "grey.png", mode="L")
    assert check_image(grey) == (40, 20)
    with pytest.raises(ImageProblem, match=r"not a colour image \(mode L\)"):
        check_image(grey, colour_only=True)
    assert load_rgb(grey).mode == "RGB"


def test_checking_bytes_already_read(tmp_path: Path) -> None:
    path = _photo(tmp_path / "a.png")
    assert check_image(path, content=path.read_bytes()) == (40, 20)


def test_image_files_lists_pictures_only(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "notes.txt", ".hidden.jpg", "sub/c.webp"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in image_files(tmp_path)] == ["a.jpg", "b.PNG"]
    assert [p.name for p in image_files(tmp_path, recursive=True)] == ["a.jpg", "b.PNG", "c.webp"]


def test_drawn_shapes_are_a_function_of_seed_and_index() -> None:
    a, boxes = draw_shapes(1, 2, size=64, classes=["cat", "dog"], max_objects=3)
    b, same = draw_shapes(1, 2, size=64, classes=["cat", "dog"], max_objects=3)
    assert np.array_equal(a, b) and boxes == same and a.shape == (64, 64, 3)
    assert boxes and all(label in ("cat", "dog") and 0 < w <= 1 and 0 < h <= 1 for label, _, _, w, h in boxes)
    single = [len(draw_shapes(0, i, size=48, classes=["circle", "square"])[1]) for i in range(5)]
    assert single == [1] * 5  # one shape per picture unless max_objects says more: a classification set
