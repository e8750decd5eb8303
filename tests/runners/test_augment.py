from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runners import AUGMENT_SETS, get_augment, list_augment_sets
from runners.augment import main, preview_grid

SHAPES = [(32, 32), (64, 48)]


def _face(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (200, 150, 120)
    return image


def test_the_team_sets_are_registered() -> None:
    assert {"none", "flip", "bccs", "gray_sharp", "strong"} <= set(list_augment_sets())


@pytest.mark.parametrize("name", sorted(AUGMENT_SETS))
@pytest.mark.parametrize("shape", SHAPES)
def test_every_set_keeps_size_and_dtype_and_is_seeded(name: str, shape: tuple[int, int]) -> None:
    image = _face(*shape)
    first = get_augment(name, *shape, seed=7)
    second = get_augment(name, *shape, seed=7)
    for _ in range(10):
        a, b = first(image=image)["image"], second(image=image)["image"]
        assert a.shape == (*shape, 3) and a.dtype == np.uint8
        assert np.array_equal(a, b)
    assert np.array_equal(image, _face(*shape))  # input not modified in place


@pytest.mark.parametrize("name", [n for n in sorted(AUGMENT_SETS) if n != "none"])
def test_sets_other_than_none_change_images(name: str) -> None:
    image = _face(64, 48)
    compose = get_augment(name, 64, 48, seed=0)
    assert any(not np.array_equal(compose(image=image)["image"], image) for _ in range(20))


def test_none_is_identity() -> None:
    image = _face(32, 32)
    assert np.array_equal(get_augment("none", 32, 32)(image=image)["image"], image)


def test_forbidden_transforms_are_not_used() -> None:
    banned = {"ElasticTransform", "GridDistortion", "RandomFog", "Blur", "GaussianBlur", "ColorJitter",
              "Perspective", "MotionBlur"}
    for name in AUGMENT_SETS:
        used = {type(t).__name__ for t in get_augment(name, 32, 32).transforms}
        assert not used & banned, (name, used & banned)


def test_unknown_set_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'sparkle'.*bccs"):
        get_augment("sparkle", 32, 32)


def test_preview_grid_tiles_original_and_draws() -> None:
    image = _face(40, 30)
    grid = preview_grid("flip", image, n=5, cols=3)
    assert grid.shape == (2 * 40, 3 * 30, 3)
    assert np.array_equal(grid[:40, :30], image)


def test_preview_cli_writes_png(tmp_path: Path) -> None:
    source = tmp_path / "face.jpg"
    Image.fromarray(_face(120, 90)).save(source)
    out = main(["--preview", "bccs", "--image", str(source), "--out", str(tmp_path / "grid.png"),
                "--n", "4", "--cols", "5", "--height", "60", "--width", "45"])
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (5 * 45, 60)
    assert not list(tmp_path.glob("*.part"))


def test_preview_cli_rejects_unknown_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "face.png"
    Image.fromarray(_face(20, 20)).save(source)
    with pytest.raises(SystemExit):
        main(["--preview", "sparkle", "--image", str(source), "--out", str(tmp_path / "g.png")])
    assert "gray_sharp" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
