"""Bad input through `ftrecipe run` / `validate`: exit 2 at the recipe key's line and column, never a traceback."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

MODEL = "model:\n  modality: stable-diffusion\n  base: stable-diffusion-v1-5/stable-diffusion-v1-5\n"
TAIL = "training:\n  max_steps: 1\nhardware:\n  accelerator: cpu\n"


def located(recipe: Path, needle: str, column_of: str) -> str:
    for number, line in enumerate(recipe.read_text().splitlines(), 1):
        if needle in line:
            return f"{recipe}:{number}:{line.index(column_of) + 1}"
    raise AssertionError(needle)


def run(tmp_path: Path, data: str, *args: str, model: str = MODEL + "  init: scratch\n"):
    recipe = tmp_path / "sd.yaml"
    recipe.write_text(model + "data:\n" + data + TAIL)
    return recipe, run_cli("run", str(recipe), "--output", str(tmp_path / "run"), "--quiet", *args)


def test_a_missing_instance_folder(tmp_path):
    recipe, result = run(tmp_path, "  format: dreambooth\n  instance_dir: photos\n  instance_prompt: a photo of sks dog\n")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{located(recipe, 'instance_dir:', 'photos')}: data.instance_dir: no such file or directory: {tmp_path / 'photos'}")


def test_a_corrupt_photo_fails_when_asked(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    recipe, result = run(tmp_path, "  format: dreambooth\n  instance_dir: photos\n  instance_prompt: a photo of sks dog\n"
                                   "  on_error: fail\n")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{located(recipe, 'instance_dir:', 'photos')}: data.instance_dir: {tmp_path / 'photos' / 'broken.jpg'}: not a readable image")
    assert "Traceback" not in result.stderr


def test_a_base_that_is_not_here_says_how_to_get_it(tmp_path):
    recipe, result = run(tmp_path, "  format: synthetic-subject\n  instance_images: 2\n", model=MODEL)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{located(recipe, 'base:', 'stable')}: model.base: 'stable-diffusion-v1-5/stable-diffusion-v1-5' is not a local directory")
    assert "Traceback" not in result.stderr


def test_cached_latents_with_random_crops_are_refused_at_validation(tmp_path):
    recipe = tmp_path / "sd.yaml"
    recipe.write_text(MODEL + "  init: scratch\ndata:\n  format: synthetic-subject\n  flip: true\n"
                      "training:\n  cache_latents: true\n")
    result = run_cli("validate", str(recipe))
    assert result.returncode == 2
    assert "training.cache_latents: cached latents are encoded once" in result.stdout + result.stderr


def test_a_kohya_export_without_lora_or_with_lora_biases_is_refused_at_validation(tmp_path):
    recipe = tmp_path / "sd.yaml"
    recipe.write_text(MODEL + "  init: scratch\nfreeze:\n  strategy: full\ndata:\n  format: synthetic-subject\n"
                      "output:\n  export: [kohya]\n")
    result = run_cli("validate", str(recipe))
    assert result.returncode == 2
    assert f"{located(recipe, 'export:', '[kohya]')}: output.export: a kohya file holds LoRA adapters: it needs freeze.strategy: lora" \
        in result.stdout + result.stderr
    assert "Traceback" not in result.stderr

    recipe.write_text(MODEL + "  init: scratch\nfreeze:\n  strategy: lora\n  lora: {bias: all}\n"
                      "data:\n  format: synthetic-subject\noutput:\n  export: [kohya]\n")
    result = run_cli("validate", str(recipe))
    assert result.returncode == 2 and "output.export: a kohya file holds LoRA down/up weights and alphas only" in result.stdout
