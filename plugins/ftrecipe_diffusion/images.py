"""Image files: the checks a photo must pass before training, and the per-example crop and flip.

Every check names the file, so a report or an error says which photo to fix. Randomness (crop
position, flip) comes from the generator the caller passes: ``example_rng(seed, index)``, so an
interrupted and resumed run sees the same crops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
#: Modes that are colour photos once converted without losing anything a person would notice.
COLOUR_MODES = ("RGB", "RGBA", "P", "CMYK", "YCbCr")


class ImageProblem(ValueError):
    """A photo that cannot train: unreadable, too small or not in colour."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, by name (caption ``.txt`` files and others are not images)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def check_image(path: Path, min_size: int) -> tuple[int, int]:
    """The (width, height) of a usable photo, or :class:`ImageProblem` saying why it is not one."""
    try:
        with Image.open(path) as image:
            image.load()  # decodes the whole file: a truncated JPEG fails here, not in the middle of training
            mode, size = image.mode, image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as error:
        # (ImportError: Ultralytics, once imported in a process, patches Image.open to try a HEIF decoder it lacks)
        raise ImageProblem(path, f"not a readable image ({type(error).__name__}: {error})") from error
    if mode not in COLOUR_MODES:
        raise ImageProblem(path, f"not a colour image (mode {mode}); convert it to RGB")
    if min(size) < min_size:
        raise ImageProblem(path, f"too small: {size[0]}x{size[1]} px, the shorter side must be at least {min_size} px")
    return size


def load_rgb(path: str | Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def prepare(image: Image.Image, resolution: int, *, center_crop: bool, flip: bool, rng: np.random.Generator | None) -> np.ndarray:
    """Resize the shorter side to ``resolution``, crop a square (centre, or where ``rng`` says) and
    flip half the time when asked; returns float32 CHW in [-1, 1], the VAE's input range."""
    width, height = image.size
    scale = resolution / min(width, height)
    size = (max(resolution, round(width * scale)), max(resolution, round(height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    spare_x, spare_y = size[0] - resolution, size[1] - resolution
    if center_crop or rng is None:
        left, top = spare_x // 2, spare_y // 2
    else:
        left, top = int(rng.integers(0, spare_x + 1)), int(rng.integers(0, spare_y + 1))
    image = image.crop((left, top, left + resolution, top + resolution))
    pixels = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    if flip and rng is not None and rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))
