"""The bench is written in exactly the real competition layout (docs/domain.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from PIL import Image

from search.data import PHOTOS

FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


def _train(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "train" / "train.csv", dtype={"id": str})


def test_train_csv_matches_the_person_folders(small_bench: Path) -> None:
    table = _train(small_bench)
    assert list(table.columns) == ["id", "gender", "race", "age", "path"]
    assert len(table) == 60 and table["path"].is_unique
    assert set(table["gender"]) == {"male", "female"}
    assert table["age"].between(18, 60).all()
    expected = table["id"] + "_" + table["gender"] + "_" + table["race"] + "_" + table["age"].astype(str)
    assert (table["path"] == expected).all()
    folders = {p.name for p in (small_bench / "train" / "images").iterdir() if not p.name.startswith(".")}
    assert folders == set(table["path"])


def test_each_person_has_the_seven_photos_in_one_format(small_bench: Path) -> None:
    exts: set[str] = set()
    for folder in (small_bench / "train" / "images").iterdir():
        if folder.name.startswith("."):
            continue
        photos = [p for p in folder.iterdir() if not p.name.startswith(".")]
        assert sorted(p.stem for p in photos) == sorted(PHOTOS), folder
        assert len({p.suffix for p in photos}) == 1, folder  # extension decided per person
        for p in photos[:2]:
            with Image.open(p) as im:
                assert im.format == FORMATS[p.suffix] and im.size == (48, 64)
        exts |= {p.suffix for p in photos}
    assert exts == {".jpg", ".jpeg", ".png"}


def test_macos_junk_files_are_present_and_are_not_images(small_bench: Path) -> None:
    info = json.loads((small_bench / "bench.json").read_text())
    junk = info["faults"]["junk_files"]
    assert len(junk) >= 2
    images = small_bench / "train" / "images"
    on_disk = sorted(str(p.relative_to(small_bench)) for p in images.glob("*/._*"))
    assert on_disk == sorted(junk)
    for rel in junk:
        data = (small_bench / rel).read_bytes()
        assert data[:4] == b"\x00\x05\x16\x07" and len(data) < 5000  # AppleDouble magic, small
    loose = info["faults"]["loose_dot_files"]
    assert "train/images/.DS_Store" in loose and all((small_bench / rel).is_file() for rel in loose)
    eval_junk = [str(p.relative_to(small_bench)) for p in (small_bench / "eval" / "images").glob("._*")]
    assert eval_junk == loose[1:]


def test_suffixed_ids_and_a_duplicate_id_are_distinct_folders(small_bench: Path) -> None:
    table = _train(small_bench)
    info = json.loads((small_bench / "bench.json").read_text())["faults"]
    suffixed = table[table["id"].str.endswith("-1")]
    assert len(suffixed) >= 1 and sorted(suffixed["path"]) == info["suffixed_ids"]
    dup = table[table["id"].duplicated(keep=False)]
    assert len(dup) == 2 and dup["age"].nunique() == 2 and dup["path"].nunique() == 2
    assert sorted(dup["path"]) == info["duplicate_id"]["paths"]


def test_eval_folder_has_hex_names_and_bench_only_labels(small_bench: Path) -> None:
    info = pd.read_csv(small_bench / "eval" / "info.csv")
    labels = pd.read_csv(small_bench / "eval_labels.csv")
    assert list(info.columns) == ["ImageID", "ans"] and (info["ans"] == 0).all()
    assert len(info) == 7 * 20 and info["ImageID"].is_unique  # default eval people = 60 // 3
    assert info["ImageID"].map(lambda s: re.fullmatch(r"[0-9a-f]{40}\.jpg", s) is not None).all()  # as the real one
    assert list(labels.columns) == ["ImageID", "label"]
    assert labels["ImageID"].tolist() == info["ImageID"].tolist()
    assert set(labels["label"]) == set(range(18))
    names = {p.name for p in (small_bench / "eval" / "images").iterdir() if not p.name.startswith(".")}
    assert names == set(info["ImageID"])
    # the rows are shuffled: the seven photos of one person are not written side by side
    assert labels["label"].diff().abs().gt(0).mean() > 0.5


def test_all_eighteen_train_classes_exist_on_a_small_bench(small_bench: Path) -> None:
    table = _train(small_bench)
    band = pd.cut(table["age"], [0, 29, 59, 200], labels=[0, 1, 2]).astype(int)
    cells = set(zip(table["gender"], band))
    assert cells == {(g, b) for g in ("male", "female") for b in (0, 1, 2)}  # x 3 mask states = 18 classes


def test_bench_json_records_parameters_and_counts(small_bench: Path) -> None:
    info = json.loads((small_bench / "bench.json").read_text())
    assert info["params"] == {"people": 60, "size": [48, 64], "seed": 3, "n_eval_people": 20, "format": 2}
    assert info["counts"]["train_images"] == 420 and sum(info["counts"]["train_extensions"].values()) == 420
    assert not list(small_bench.parent.glob(".small.partial-*"))
