"""Image chores every image modality shares: finding, decoding, checking and drawing pictures.

Public through :mod:`ftrecipe.plugin` (loaded on first use, so a registration module stays light):

- :func:`check_image` decodes a file completely (a truncated JPEG fails here, not mid-training) and
  returns its size as people see it (EXIF orientation applied), or raises :class:`ImageProblem`
  naming the file and saying why it cannot train: unreadable, too small, not in colour.
- :func:`load_rgb` opens a picture upright (EXIF orientation applied) as 8-bit RGB.
- :func:`image_files` lists the pictures of a folder; :func:`draw_shapes` draws the offline demos'
  circles, squares and triangles with their boxes.

Needs Pillow and NumPy, never torch.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Modes that are colour pictures once converted to RGB without losing anything a person would notice.
COLOUR_MODES = ("RGB", "RGBA", "P", "CMYK", "YCbCr")
#: EXIF orientations that turn the picture a quarter: its upright width is the stored height.
_QUARTER_TURNS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112


class ImageProblem(ValueError):
    """A picture that cannot train: unreadable, too small or not in colour (``why`` says which)."""

    def __init__(self, path: str | Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def image_files(folder: Path, *, recursive: bool = False) -> list[Path]:
    """The picture files in ``folder`` (and below it with ``recursive``), sorted by path; caption
    ``.txt`` files, label files and hidden files are not pictures."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of ``image`` as a viewer shows it: EXIF orientation 5-8 swaps the sides."""
    width, height = image.size
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - a broken EXIF block does not make the pixels unusable
        orientation = None
    return (height, width) if orientation in _QUARTER_TURNS else (width, height)


def check_image(path: str | Path, min_size: int = 8, *, colour_only: bool = False, content: bytes | None = None) -> tuple[int, int]:
    """The upright (width, height) of a usable picture, or :class:`ImageProblem` saying why it is not one.

    ``content``: the file's bytes when the caller has read them already (to hash them, say).
    ``colour_only`` refuses grey-scale and other modes a colour model would have to invent colour for.
    """
    try:
        source = io.BytesIO(content) if content is not None else path
        with Image.open(source) as image:
            image.load()  # decodes the whole file: truncation and corruption show here
            mode, size = image.mode, upright_size(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as error:
        # (ImportError: Ultralytics, once imported in a process, patches Image.open to try a HEIF decoder it lacks)
        raise ImageProblem(path, f"not a readable image ({type(error).__name__}: {error})") from error
    if colour_only and mode not in COLOUR_MODES:
        raise ImageProblem(path, f"not a colour image (mode {mode}); convert it to RGB")
    if min(size) < min_size:
        raise ImageProblem(path, f"too small: {size[0]}x{size[1]} px, the shorter side must be at least {min_size} px")
    return size


def load_rgb(path: str | Path) -> Image.Image:
    """The picture at ``path``, upright (EXIF orientation applied) and in 8-bit RGB."""
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)
        return upright.convert("RGB")


# -- the offline demos' pictures -----------------------------------------------------------------

SHAPES = ("circle", "square", "triangle")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.integers(60, 200, size=3)
    y, x = np.mgrid[0:size, 0:size]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
    stripes = 25 * np.sin((np.cos(angle) * x + np.sin(angle) * y) * 2 * np.pi / period)
    noise = rng.normal(0, 12, size=(size, size, 3))
    return np.clip(base[None, None, :] + stripes[..., None] + noise, 0, 255)


def _mask(shape: str, size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] + 0.5
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
    if shape == "square":
        return (abs(x - cx) <= radius) & (abs(y - cy) <= radius)
    # an upward triangle inside the same box
    top, bottom = cy - radius, cy + radius
    half = radius * (y - top) / (2 * radius)
    return (y >= top) & (y <= bottom) & (abs(x - cx) <= half)


def draw_shapes(seed: int, index: int, *, size: int, classes: list[str], max_objects: int = 1,
                min_objects: int = 1, scale: tuple[float, float] = (0.09, 0.2)) -> tuple[np.ndarray, list[tuple]]:
    """One RGB picture (uint8, ``size`` x ``size``) of shapes named by ``classes`` (each one of
    :data:`SHAPES`, by its name or position) on a striped, noisy background, and its boxes
    ``(class, cx, cy, w, h)`` as fractions of the picture.

    A pure function of ``(seed, index)``: a demo, its tests and a resumed run see the same pictures.
    Colours, sizes (``scale``: the radius as a fraction of the side) and positions vary, so a model has
    to learn shape rather than colour; shapes do not overlap.
    """
    rng = np.random.default_rng([seed, index])
    image = _background(rng, size)
    boxes: list[tuple] = []
    taken: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(min_objects, max_objects + 1))):
        for _attempt in range(20):  # place without overlapping the shapes already drawn
            radius = rng.uniform(*scale) * size
            cx, cy = rng.uniform(radius, size - radius, size=2)
            if all((cx - ox) ** 2 + (cy - oy) ** 2 > (radius + r + 2) ** 2 for ox, oy, r in taken):
                break
        else:
            continue
        label = classes[int(rng.integers(len(classes)))]
        shape = label if label in SHAPES else SHAPES[classes.index(label) % len(SHAPES)]
        colour = rng.integers(0, 256, size=3)
        colour[int(rng.integers(3))] = rng.choice([0, 255])  # keep it distinct from the mid-tone background
        image[_mask(shape, size, cx, cy, radius)] = colour
        taken.append((cx, cy, radius))
        left, right = max(0.0, cx - radius), min(float(size), cx + radius)
        top, bottom = max(0.0, cy - radius), min(float(size), cy + radius)
        boxes.append((label, (left + right) / 2 / size, (top + bottom) / 2 / size, (right - left) / size, (bottom - top) / size))
    return image.astype(np.uint8), boxes
