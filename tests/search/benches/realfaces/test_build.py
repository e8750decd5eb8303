"""The real-face bench builder, on a folder of UTKFace-named faces that the test draws itself."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from search.data import PHOTOS, load_eval, load_train
from search.benches.realfaces import build, plan_people, read_faces
from search.realfaces import main
from search.benches.realfaces.catalog import parse_name
from search.benches.synth.people import CELL_COUNTS, allocate

# (gender, age) -> how many faces; 19 is missing as in UTKFace, and old men come partly as 61-62.
AGES = {0: [18, 20, 20, 21, 25, 28, 33, 45, 55, 58, 59, 60, 61, 62], 1: [18, 18, 20, 22, 26, 29, 35, 44, 56, 57,
                                                                        58, 59, 60, 60, 60]}


def _draw_face(path: Path, age: int, gender: int) -> None:
    img = Image.new("RGB", (200, 200), (90 + age, 120, 150 - 40 * gender))
    d = ImageDraw.Draw(img)
    d.ellipse([30, 20, 170, 195], fill=(225, 190, 160))
    d.ellipse([65, 65, 85, 80], fill=(40, 30, 30))
    d.ellipse([115, 65, 135, 80], fill=(40, 30, 30))
    d.line([(70, 145), (130, 145)], fill=(150, 60, 60), width=4)
    img.save(path, quality=90)


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("utkface")
    for gender, ages in AGES.items():
        for i, age in enumerate(ages):
            _draw_face(folder / f"{age}_{gender}_{i % 5}_2017010{i % 10}12345678{i}.jpg.chip.jpg", age, gender)
    _draw_face(folder / "61_1_20170109142408075.jpg.chip.jpg", 61, 1)  # UTKFace has a few names without race
    (folder / "._60_0_0_20170101.jpg.chip.jpg").write_bytes(b"junk")
    return folder


@pytest.fixture(scope="module")
def exclude(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lists") / "exclude.txt"
    banned = sorted(p.name for p in faces.glob("60_1_*"))[:1] + sorted(p.name for p in faces.glob("18_0_*"))
    path.write_text("# never use these\n" + "\n".join(banned) + "\n")
    return path


@pytest.fixture(scope="module")
def bench(faces: Path, exclude: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("benches") / "rf"
    build(faces, out, n_train=12, n_eval=6, seed=3, size=(96, 128), exclude=exclude, n_jobs=1, progress=False)
    return out


def test_names_parse_as_utkface_does() -> None:
    face = parse_name("58_1_2_20170104201935482.jpg.chip.jpg")
    assert face is not None and (face.age, face.gender, face.race) == (58, 1, 2)
    assert parse_name("61_1_20170109142408075.jpg.chip.jpg") is None
    assert parse_name("notes.txt") is None


def test_the_bench_is_the_competition_layout_and_the_harness_reads_it(bench: Path) -> None:
    data = bench / "data"
    train = load_train(data)  # the harness's own validation of the layout
    assert len(train.people) == 12 and len(train.images) == 12 * len(PHOTOS)
    table = pd.read_csv(data / "train" / "train.csv", dtype={"id": str})
    assert list(table.columns) == ["id", "gender", "race", "age", "path"]
    assert (table["path"] == table["id"] + "_" + table["gender"] + "_" + table["race"] + "_"
            + table["age"].astype(str)).all()
    for folder in (data / "train" / "images").iterdir():
        assert sorted(p.stem for p in folder.iterdir()) == sorted(PHOTOS)
        with Image.open(next(folder.iterdir())) as im:
            assert im.size == (96, 128)
    evals = load_eval(data)
    assert len(evals.info) == 6 * len(PHOTOS)
    assert evals.info["ImageID"].str.fullmatch(r"[0-9a-f]{40}\.jpg").all()
    # eval labels live beside the data, never inside it
    assert not list(data.rglob("eval_labels.csv"))
    labels = pd.read_csv(bench / "eval_labels.csv", dtype={"ImageID": str})
    assert set(labels["ImageID"]) == set(evals.info["ImageID"])
    assert (labels["label"] == labels["mask"] * 6 + labels["gender"] * 3 + labels["age_band"]).all()


def test_excluded_and_unparsed_faces_never_enter_and_no_face_is_used_twice(bench: Path, exclude: Path) -> None:
    people = json.loads((bench / "bench.json").read_text())["people"]
    used = [p["face"] for p in people]
    banned = {line for line in exclude.read_text().splitlines() if line and not line.startswith("#")}
    assert not banned & set(used)
    assert "61_1_20170109142408075.jpg.chip.jpg" not in used
    assert len(used) == len(set(used)) == 18


def test_old_people_are_all_60_and_labels_keep_the_real_age_otherwise(faces: Path, exclude: Path) -> None:
    train, evals = plan_people(read_faces(faces, set(exclude.read_text().split())), 12, 6, seed=3)
    for p in train + evals:
        if p.face.age >= 60:
            assert p.age == 60
        else:
            assert p.age == p.face.age and 18 <= p.age < 60


def test_people_follow_the_real_proportions_by_gender_and_age_band(faces: Path) -> None:
    train, evals = plan_people(read_faces(faces), 14, 8, seed=0)
    for people, n in ((train, 14), (evals, 8)):
        counts = np.zeros((2, 3), dtype=int)
        for p in people:
            counts[p.gender, 0 if p.age < 30 else (1 if p.age < 60 else 2)] += 1
        assert (counts == allocate(n, CELL_COUNTS, 1)).all()


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "bench.json"):
        h.update(path.relative_to(root).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_the_same_seed_builds_the_same_bench(faces: Path, exclude: Path, bench: Path, tmp_path: Path) -> None:
    again = build(faces, tmp_path / "again", n_train=12, n_eval=6, seed=3, size=(96, 128), exclude=exclude,
                  n_jobs=2, progress=False).parent
    assert _digest(again) == _digest(bench)
    other = build(faces, tmp_path / "other", n_train=12, n_eval=6, seed=4, size=(96, 128), exclude=exclude,
                  n_jobs=1, progress=False).parent
    assert _digest(other) != _digest(bench)


def test_too_few_faces_or_a_foreign_folder_are_refused_with_one_line(faces: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="male faces left in ages 18-29 for train, which needs 21; ask for fewer people"):
        plan_people(read_faces(faces), 100, 6, seed=0)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    args = ["--faces", str(faces), "--out", str(mine), "--people", "12", "--eval-people", "6", "--quiet"]
    assert main(args + ["--overwrite"]) == 2
    assert "not a real-face bench" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "keep me"
    assert main(["--faces", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
