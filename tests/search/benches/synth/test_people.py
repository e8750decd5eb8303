"""Proportions, faults and what the drawings show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from search.benches.synth import Person, render_photos
from search.benches.synth.faces import sample_look
from search.benches.synth.people import CELL_COUNTS, allocate


def _photo(folder: Path, stem: str) -> np.ndarray:
    (path,) = [p for p in folder.glob(f"{stem}.*") if not p.name.startswith(".")]
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32)


def _gap(a: np.ndarray, b: np.ndarray | Image.Image) -> float:
    """Mean absolute difference of 4x4 block averages: blind to JPEG loss and pixel noise."""
    d = a - np.asarray(b, dtype=np.float32)
    h, w = (d.shape[0] // 4) * 4, (d.shape[1] // 4) * 4
    return float(np.abs(d[:h, :w].reshape(h // 4, 4, w // 4, 4, 3).mean(axis=(1, 3))).mean())


def test_proportions_follow_the_real_data(bench500: Path) -> None:
    table = pd.read_csv(bench500 / "train" / "train.csv", dtype={"id": str})
    assert len(table) == 500
    assert table["gender"].eq("female").mean() == pytest.approx(1658 / 2700, abs=0.03)
    old = table["age"] >= 60
    assert old.mean() == pytest.approx(192 / 2700, abs=0.015)
    assert set(table.loc[old, "age"]) == {60}
    assert table["age"].between(18, 60).all()
    assert table["age"].isin([18, 19, 20]).mean() == pytest.approx(866 / 2700, abs=0.06)
    assert table["age"].between(55, 59).mean() == pytest.approx(573 / 2700, abs=0.05)
    photos = [p.stem for p in (bench500 / "train" / "images").glob("*/*") if not p.name.startswith(".")]
    counts = pd.Series(photos).str.startswith("mask").value_counts()
    assert counts[True] == 5 * counts[False] / 2  # 5 : 1 : 1
    exts = json.loads((bench500 / "bench.json").read_text())["counts"]["train_extensions"]
    assert exts[".jpg"] / sum(exts.values()) == pytest.approx(18035 / 18900, abs=0.04)


def test_allocation_keeps_every_cell_and_the_total() -> None:
    for total in (6, 24, 60, 300, 2700):
        cells = allocate(total, CELL_COUNTS, min(3, total // 6))
        assert cells.sum() == total and cells.min() >= min(3, total // 6)
    assert allocate(2700, CELL_COUNTS, 3).tolist() == CELL_COUNTS.astype(int).tolist()


def test_gender_flips_are_drawn_as_the_other_gender(bench500: Path) -> None:
    info = json.loads((bench500 / "bench.json").read_text())
    table = pd.read_csv(bench500 / "train" / "train.csv", dtype={"id": str}).set_index("path")
    flips = info["faults"]["gender_flipped"]
    assert len(flips) == 5  # 1 % of 500
    seed, size = info["params"]["seed"], tuple(info["params"]["size"])
    for flip in flips:
        row = table.loc[flip["path"]]
        assert row["gender"] == flip["csv_gender"] != flip["drawn_gender"]
        drawn = {"male": 0, "female": 1}[flip["drawn_gender"]]
        on_disk = _photo(bench500 / "train" / "images" / flip["path"], "normal")
        as_drawn, as_labelled = (render_photos(Person("train", flip["index"], g, int(row["age"]), 1 - drawn),
                                               size, seed)["normal"] for g in (drawn, 1 - drawn))
        same = _gap(on_disk, as_drawn)
        assert same < 3.0  # the same drawing, up to JPEG loss
        assert _gap(on_disk, as_labelled) > 2 * same


def test_swapped_people_have_incorrect_and_normal_exchanged_on_disk(bench500: Path) -> None:
    info = json.loads((bench500 / "bench.json").read_text())
    swaps = info["faults"]["incorrect_normal_swapped"]
    assert len(swaps) == 1  # 0.2 % of 500
    table = pd.read_csv(bench500 / "train" / "train.csv", dtype={"id": str}).set_index("path")
    seed, size = info["params"]["seed"], tuple(info["params"]["size"])
    for swap in swaps:
        row = table.loc[swap["path"]]
        g = {"male": 0, "female": 1}[row["gender"]]
        drawn = render_photos(Person("train", swap["index"], g, int(row["age"]), g), size, seed)
        folder = bench500 / "train" / "images" / swap["path"]
        for stem, other in (("normal", "incorrect_mask"), ("incorrect_mask", "normal")):
            disk = _photo(folder, stem)
            assert _gap(disk, drawn[other]) < 3.0
            assert _gap(disk, drawn[stem]) > 2 * _gap(disk, drawn[other])


def test_background_colour_correlates_with_age_band(bench500: Path) -> None:
    table = pd.read_csv(bench500 / "train" / "train.csv", dtype={"id": str})
    band = np.where(table["age"] < 30, 0, np.where(table["age"] < 60, 1, 2))
    corners = np.stack([_photo(bench500 / "train" / "images" / p, "normal")[:5, :5].mean(axis=(0, 1))
                        for p in table["path"]])
    blue_minus_red = corners[:, 2] - corners[:, 0]
    green_minus_others = corners[:, 1] - corners[:, [0, 2]].mean(axis=1)
    means = [blue_minus_red[band == b].mean() for b in range(3)]
    assert means[0] > means[1] + 25 and means[1] > means[2] + 25  # bluish young, warm old
    assert green_minus_others[band == 1].mean() > green_minus_others[band != 1].mean() + 15
    # not every person: about a fifth get an unrelated background
    warm_old = (blue_minus_red[band == 2] < -40).mean()
    assert 0.5 < warm_old < 0.98


def test_age_cues_are_continuous_across_the_cutoff() -> None:
    def cues(age: int) -> np.ndarray:
        looks = [sample_look(np.random.default_rng([7, age, i]), i % 2, age, 1) for i in range(400)]
        return np.array([[lk.grey, lk.wrinkles] for lk in looks]).mean(axis=0)

    c20, c45, c58, c59, c60 = (cues(a) for a in (20, 45, 58, 59, 60))
    near = np.abs(c60 - c58).max()
    assert near < 0.12  # 58 and 60 nearly alike
    assert np.abs(c59 - c60).max() < 0.08
    assert (c60 - c45).min() > 2 * near and (c45 - c20).min() > 0.2  # 20 < 45 < 60 clearly apart
