"""Point 2 (the real layout) and point 3 (validate first, one clear message, write nothing)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from search.data import PHOTOS, DataError, load_eval, load_recorded_train, load_train


def snapshot(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size) for p in root.rglob("*"))


def test_loads_real_layout(layout) -> None:
    data = load_train(layout.root)
    assert len(data.people) == 13 and len(data.images) == 13 * 7
    assert list(data.people.index) == list(range(13))
    # suffixed ids and one id twice with different ages are distinct people
    assert "001498-1_male_Asian_23" in set(data.people["person"])
    assert (data.people["id"] == "003397").sum() == 2
    assert sorted(data.people.loc[data.people["id"] == "003397", "age"]) == [21, 25]
    # dot files and ._* junk are ignored: every image row is a real photo, seven per person
    assert not any(Path(p).name.startswith(".") for p in data.images["path"])
    assert all(tuple(g) == PHOTOS for _, g in data.images.groupby("person")["photo"])
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in data.images["path"])
    row = data.images[
        (data.images["person"] == "000003_female_Asian_60") & (data.images["photo"] == "normal")
    ]
    assert row["label"].item() == 2 * 6 + 1 * 3 + 2
    assert data.labels.dtype == np.int64 and data.labels.max() < 18
    # the real age per image row, the person's (what the ordinal head learns)
    assert data.ages.dtype == np.int64 and data.ages[row.index[0]] == 60
    people_ages = data.people["age"].to_numpy()[data.images["person_index"].to_numpy()]
    assert np.array_equal(data.ages, people_ages)


def test_train_folder_itself_and_csv_order_give_the_same_data(layout) -> None:
    a = load_train(layout.root)
    table = layout.csv()
    layout.write_csv(table.iloc[::-1])
    b = load_train(layout.train)
    assert b.root == layout.train.resolve()
    pd.testing.assert_frame_equal(a.images, b.images)
    assert a.fingerprint == b.fingerprint


def test_fingerprint_follows_the_files(layout, draw_image) -> None:
    before = load_train(layout.root)
    photo = next(layout.folder("000002").glob("mask1.*"))
    draw_image(photo, seed=999, size=(30, 40))
    after = load_train(layout.root)
    assert after.fingerprint != before.fingerprint
    assert after.image_fingerprint != before.image_fingerprint
    assert load_recorded_train(layout.root, None, after.fingerprint).fingerprint == after.fingerprint
    with pytest.raises(DataError, match=rf"the data in .* changed since the study ran on it \(fingerprint "
                                        rf"{after.fingerprint[:12]}, recorded {before.fingerprint[:12]}\)"):
        load_recorded_train(layout.root, None, before.fingerprint)


def test_missing_train_csv(layout) -> None:
    (layout.train / "train.csv").unlink()
    with pytest.raises(DataError, match=r"train\.csv.*does not exist"):
        load_train(layout.root)


def test_missing_column_is_named(layout) -> None:
    layout.write_csv(layout.csv().drop(columns="age"))
    with pytest.raises(DataError, match="lacks column.*'age'"):
        load_train(layout.root)


def test_row_whose_folder_does_not_exist(layout) -> None:
    table = layout.csv()
    extra = {"id": "009999", "gender": "male", "race": "Asian", "age": "33", "path": "009999_male_Asian_33"}
    layout.write_csv(pd.concat([table, pd.DataFrame([extra])]))
    with pytest.raises(DataError, match=r"line 15: folder .*009999_male_Asian_33 does not exist"):
        load_train(layout.root)


def test_duplicate_folder_rows(layout) -> None:
    table = layout.csv()
    layout.write_csv(pd.concat([table, table.iloc[[4]]]))
    with pytest.raises(DataError, match=r"line 15: path '000005_female_Asian_29' repeats line 6"):
        load_train(layout.root)


def test_dot_files_are_ignored_everywhere(layout) -> None:
    # the fixture already put ._normal.jpg in every folder, ._<folder> and .DS_Store files and a
    # .hidden_dir beside the person folders, and ._junk.jpg among the eval images
    assert (layout.folder("000001") / "._normal.jpg").exists() and (
        layout.train / "images" / ".hidden_dir"
    ).is_dir()
    (layout.train / "images" / ".hidden_dir" / "mask1.jpg").write_bytes(b"junk")
    data = load_train(layout.root)
    assert len(data.people) == 13 and len(load_eval(layout.root).info) == 6
    assert not any("/." in p for p in data.paths)


def test_folder_not_in_csv(layout) -> None:
    layout.write_csv(layout.csv().iloc[1:])  # drops 000001's row, keeps its folder
    with pytest.raises(DataError, match=r"000001_female_Asian_45 has no row in train\.csv"):
        load_train(layout.root)


def test_missing_photo_names_folder_and_photo(layout) -> None:
    folder = layout.folder("000004")
    next(folder.glob("mask3.*")).unlink()
    with pytest.raises(DataError, match=r"000004_male_Asian_60: missing photo 'mask3'"):
        load_train(layout.root)


def test_two_files_for_one_photo(layout, draw_image) -> None:
    folder = layout.folder("000005")
    existing = next(folder.glob("mask1.*"))
    other = ".png" if existing.suffix != ".png" else ".jpg"
    draw_image(folder / f"mask1{other}", seed=5)
    with pytest.raises(DataError, match=r"000005_female_Asian_29: photo 'mask1' has 2 files"):
        load_train(layout.root)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_undecodable_image_is_named(layout, damage: str, tmp_path: Path) -> None:
    photo = next(layout.folder("000006").glob("normal.*"))
    data = photo.read_bytes()
    photo.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"not an image at all" * 10)
    before = snapshot(layout.root)
    verified = tmp_path / "verified"
    with pytest.raises(DataError, match=rf"cannot be decoded: 1 problem:\n  - {re.escape(str(photo))}: "):
        load_train(layout.root, verified_dir=verified)
    assert snapshot(layout.root) == before and not verified.exists()  # nothing written


@pytest.mark.parametrize(
    ("age", "why"),
    [
        ("forty", "not a whole number"),
        ("45.5", "not a whole number"),
        ("0", "out of range"),
        ("150", "out of range"),
        ("", "not a whole"),
    ],
)
def test_bad_age_names_the_row(layout, age: str, why: str) -> None:
    table = layout.csv()
    table.loc[3, "age"] = age
    layout.write_csv(table)
    with pytest.raises(DataError, match=rf"line 5: age .* {why}"):
        load_train(layout.root)


def test_unknown_gender_names_row_and_value(layout) -> None:
    table = layout.csv()
    table.loc[2, "gender"] = "unknown"
    table.loc[0, "gender"] = " FEMALE "  # case and spaces are fine
    layout.write_csv(table)
    with pytest.raises(DataError, match=r"line 4: unknown gender 'unknown'") as info:
        load_train(layout.root)
    assert "line 2" not in str(info.value)


def test_gender_case_insensitive(layout) -> None:
    table = layout.csv()
    table["gender"] = table["gender"].str.upper()
    layout.write_csv(table)
    data = load_train(layout.root)
    assert data.people["gender"].tolist() == [int(g == "FEMALE") for g in table.sort_values("path")["gender"]]


def test_many_problems_in_one_message(layout) -> None:
    table = layout.csv()
    table["age"] = "old"
    layout.write_csv(table)
    with pytest.raises(DataError, match="13 problems") as info:
        load_train(layout.root)
    assert "and 8 more" in str(info.value)


def test_verified_dir_skips_the_second_decode_check(layout, tmp_path: Path, monkeypatch) -> None:
    verified = tmp_path / "verified"
    load_train(layout.root, verified_dir=verified)
    assert len(list(verified.glob("verified-*.json"))) == 1
    import search.data.layout as layout_mod

    def boom(*args, **kwargs):
        raise AssertionError("decode check should have been skipped")

    monkeypatch.setattr(layout_mod, "check_decodable", boom)
    load_train(layout.root, verified_dir=verified)
    os.utime(next(layout.folder("000001").glob("mask2.*")), ns=(1, 1))  # a changed file is checked again
    with pytest.raises(AssertionError, match="skipped"):
        load_train(layout.root, verified_dir=verified)


def test_eval_keeps_row_order_and_resolves_paths(layout) -> None:
    info = pd.read_csv(layout.eval / "info.csv")
    info = info.iloc[::-1]
    info.loc[info.index[0], "ImageID"] = info["ImageID"].iloc[0].removesuffix(".jpg")  # id without extension
    info.to_csv(layout.eval / "info.csv", index=False)
    for root in (layout.root, layout.eval):
        ev = load_eval(root)
        assert ev.info["ImageID"].tolist() == info["ImageID"].tolist()
        assert all(Path(p).is_file() and Path(p).parent == layout.eval.resolve() / "images" for p in ev.paths)
        assert "ans" in ev.info.columns and len(ev.info) == 6


def test_eval_row_whose_image_is_missing(layout) -> None:
    info = pd.read_csv(layout.eval / "info.csv")
    (layout.eval / "images" / info["ImageID"][2]).unlink()
    with pytest.raises(DataError, match=rf"line 4: ImageID '{info['ImageID'][2]}' has no image"):
        load_eval(layout.root)


def test_not_a_data_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_train(tmp_path / "nowhere")
    with pytest.raises(DataError, match="holds neither train/train.csv"):
        load_train(tmp_path)


def test_a_latin1_info_csv_says_save_it_as_utf8(layout) -> None:
    """Issue 23: the error named the codec but not the fix."""
    text = (layout.eval / "info.csv").read_text() + "café.jpg,0\n"
    (layout.eval / "info.csv").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError, match=r"info\.csv .*info\.csv is not UTF-8 text \(byte \d+ is b'\\xe9'.*save it as UTF-8"):
        load_eval(layout.root)


def test_repeated_person_ids_are_named_in_a_warning(layout, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 23: the real data has one id on two rows (two folders, two ages); it was accepted
    without a word. It still loads (each folder is a person), with one warning naming the lines."""
    with caplog.at_level("WARNING", logger="search.data.check"):
        load_train(layout.root)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert re.search(r"train\.csv: 1 id\(s\) appear on several rows \(id '003397' on lines \d+, \d+\)", warning)
    assert "merge their folders" in warning
