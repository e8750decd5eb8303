"""Fixtures that build tiny data layouts on disk with real JPEG/PNG files drawn by PIL."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from search.data.labels import PHOTOS

# (id, gender, race, age): covers all six gender x age-band classes, the suffixed id and the
# id that appears twice with different ages.
DEFAULT_PEOPLE: tuple[tuple[str, str, str, int], ...] = (
    ("000001", "female", "Asian", 45),
    ("000002", "male", "Asian", 20),
    ("000003", "female", "Asian", 60),
    ("000004", "male", "Asian", 60),
    ("000005", "female", "Asian", 29),
    ("000006", "male", "Asian", 30),
    ("000007", "female", "Asian", 58),
    ("000008", "male", "Asian", 59),
    ("000009", "female", "Asian", 57),
    ("000010", "male", "Asian", 18),
    ("001498-1", "male", "Asian", 23),
    ("003397", "female", "Asian", 21),
    ("003397", "female", "Asian", 25),
)


@dataclass
class Layout:
    root: Path  # holds train/ and eval/

    @property
    def train(self) -> Path:
        return self.root / "train"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def folder(self, person_id: str) -> Path:
        """The first folder whose name starts with ``person_id_``."""
        hits = sorted((self.train / "images").glob(f"{person_id}_*"))
        assert hits, person_id
        return hits[0]

    def csv(self) -> pd.DataFrame:
        return pd.read_csv(self.train / "train.csv", dtype=str, keep_default_na=False)

    def write_csv(self, table: pd.DataFrame) -> None:
        table.to_csv(self.train / "train.csv", index=False)


def draw(path: Path, seed: int, size: tuple[int, int] = (24, 32)) -> None:
    """A small deterministic picture (noise over a colour), saved in the format of its suffix."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, 3)
    arr = np.clip(base + rng.integers(-40, 41, (h, w, 3)), 0, 255).astype(np.uint8)
    arr[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = rng.integers(0, 256, 3)  # a "face" block
    fmt = {".png": "PNG"}.get(path.suffix.lower(), "JPEG")
    Image.fromarray(arr).save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def build_layout(
    root: Path,
    people: Sequence[tuple[str, str, str, int]] = DEFAULT_PEOPLE,
    eval_images: int = 6,
    size: tuple[int, int] = (24, 32),
    junk: bool = True,
) -> Layout:
    images = root / "train" / "images"
    images.mkdir(parents=True)
    rows = []
    exts = (".jpg", ".png", ".jpeg")
    for i, (pid, gender, race, age) in enumerate(people):
        folder = f"{pid}_{gender}_{race}_{age}"
        (images / folder).mkdir()
        for j, photo in enumerate(PHOTOS):
            draw(images / folder / f"{photo}{exts[(i + j) % 3]}", seed=i * 10 + j, size=size)
        if junk:
            (images / folder / f"._{photo}.jpg").write_bytes(b"\x00\x05\x16\x07 macOS junk")
        rows.append({"id": pid, "gender": gender, "race": race, "age": str(age), "path": folder})
    pd.DataFrame(rows).to_csv(root / "train" / "train.csv", index=False)
    if junk:
        (images / "._000001_female_Asian_45").write_bytes(b"junk")
        (images / ".DS_Store").write_bytes(b"junk")
        (images / ".hidden_dir").mkdir()
    ev = root / "eval" / "images"
    ev.mkdir(parents=True)
    ids = []
    for k in range(eval_images):
        name = hashlib.sha1(str(k).encode()).hexdigest() + ".jpg"
        draw(ev / name, seed=1000 + k, size=size)
        ids.append(name)
    if junk:
        (ev / "._junk.jpg").write_bytes(b"junk")
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(root / "eval" / "info.csv", index=False)
    return Layout(root)


@pytest.fixture
def make_layout(tmp_path: Path) -> Callable[..., Layout]:
    """Factory: ``make_layout(name=None, people=..., eval_images=6, size=(24, 32), junk=True)``."""
    counter = iter(range(1000))

    def make(name: str | None = None, **kwargs: object) -> Layout:
        return build_layout(tmp_path / (name or f"data{next(counter)}"), **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def layout(make_layout: Callable[..., Layout]) -> Layout:
    return make_layout()


def _many_people(n: int, seed: int = 0) -> list[tuple[str, str, str, int]]:
    rng = np.random.default_rng(seed)
    ages = rng.choice([19, 22, 27, 33, 41, 50, 58, 59, 60], size=n)
    return [(f"{i:06d}", ("male", "female")[i % 2], "Asian", int(a)) for i, a in enumerate(ages)]


@pytest.fixture
def many_people() -> Callable[..., list[tuple[str, str, str, int]]]:
    """``many_people(n, seed=0)``: people with ages over all bands and both genders."""
    return _many_people


@pytest.fixture
def draw_image() -> Callable[..., None]:
    """``draw_image(path, seed, size=(w, h))``: a deterministic JPEG/PNG by suffix."""
    return draw


@pytest.fixture
def layout_builder() -> Callable[..., Layout]:
    """``layout_builder(root, people=..., eval_images=6, size=(24, 32), junk=True)`` at a chosen path."""
    return build_layout
