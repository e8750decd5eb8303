"""The bench is written in exactly the real competition layout (docs/domain.md).

Determinism, atomic writes, argument errors, the contact sheet and the command line.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from search.data import PHOTOS
from search.benches.synth import build, contact_sheet, generate, parse_size

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
    assert not list(small_bench.parent.glob(".small.tmp-*"))


REPO = Path(__file__).resolve().parents[4]


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = _digest(generate(tmp_path / "a", people=24, size=(32, 48), seed=5, progress=False))
    b = _digest(generate(tmp_path / "b", people=24, size=(32, 48), seed=5, progress=False, n_jobs=2))
    c = _digest(generate(tmp_path / "c", people=24, size=(32, 48), seed=6, progress=False))
    assert a == b and len(a) > 24 * 7
    assert a != c


def test_an_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing(person, size, seed, root):
        calls.append(person)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(person, size, seed, root)

    real = build._write_person
    monkeypatch.setattr(build, "_write_person", failing)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "bench", people=24, size=(32, 48), progress=False, n_jobs=1)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(build, "_write_person", real)
    root = generate(tmp_path / "bench", people=24, size=(32, 48), progress=False)
    assert (root / "bench.json").is_file() and [p.name for p in tmp_path.iterdir()] == ["bench"]


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    generate(out, people=12, size=(32, 48), progress=False)
    with pytest.raises(FileExistsError, match="pass --overwrite to replace it"):
        generate(out, people=12, size=(32, 48), progress=False, seed=1)
    generate(out, people=12, size=(32, 48), progress=False, seed=1, overwrite=True)  # its own bench
    assert json.loads((out / "bench.json").read_text())["params"]["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["bench"]  # no temporary or old folder left


def test_the_next_run_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    from tests.search.verbs.test_clean import _killed_build

    left = _killed_build(tmp_path / "bench")
    generate(tmp_path / "bench", people=12, size=(32, 48), progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["bench"] and not left.exists()


def _notes(out: Path) -> None:
    out.mkdir()
    (out / "keep.txt").write_text("mine")


def _git_checkout(out: Path) -> None:
    (out / ".git" / "objects").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "train").mkdir()
    (out / "bench.json").write_text(json.dumps({"note": "search.synth bench: a copy"}))


FOREIGN = {
    "a folder of notes": (_notes, "it has no bench.json"),
    "a plain file": (lambda out: out.write_text("mine"), "it is not a folder"),
    "a git checkout holding a bench.json": (_git_checkout, "it holds .git, which this verb does not write"),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_overwrite_refuses_what_synth_did_not_write_and_deletes_nothing(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.synth import main

    make, reason = FOREIGN[case]
    out = tmp_path / "target"
    make(out)
    before = _snapshot(tmp_path)
    assert main(["--out", str(out), "--people", "12", "--size", "32x48", "--overwrite", "--quiet"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"--out {out} is not a synthetic bench written by python -m search.synth ({reason})" in line
    assert "nothing was deleted" in line and "Choose another --out" in line
    assert _snapshot(tmp_path) == before


def _snapshot(root: Path) -> list:
    return sorted((p.relative_to(root), p.is_file() and p.read_bytes()) for p in root.rglob("*"))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"people": 3}, "people must be"),
    ({"size": (16, 48)}, "size must be"),
    ({"n_eval_people": 2}, "n_eval_people"),
])
def test_bad_arguments_name_the_value(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "x", **{"people": 12, "size": (32, 48), **kwargs})
    assert not (tmp_path / "x").exists()


def test_parse_size() -> None:
    assert parse_size("384x512") == (384, 512)
    with pytest.raises(ValueError, match="'96by128'"):
        parse_size("96by128")


def test_contact_sheet_has_one_row_per_class(small_bench: Path, tmp_path: Path) -> None:
    out = contact_sheet(small_bench, tmp_path / "sheet.png", per_class=3)
    with Image.open(out) as im:
        assert im.height == 18 * 64 and im.width > 3 * 48
        pixels = np.asarray(im.convert("RGB"))
    for row in range(18):  # every row has drawings in its three slots, not blank tiles
        tiles = pixels[row * 64:(row + 1) * 64, -3 * 48:]
        assert tiles.std() > 20
    with pytest.raises(FileNotFoundError, match="train.csv"):
        contact_sheet(tmp_path, tmp_path / "none.png")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.synth", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_command_line_writes_a_bench_and_a_sheet(tmp_path: Path) -> None:
    done = _cli("--out", str(tmp_path / "b"), "--people", "12", "--size", "32x48", "--seed", "1",
                "--sheet", str(tmp_path / "s.png"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b" / "train" / "train.csv").is_file() and (tmp_path / "s.png").is_file()
    again = _cli("--out", str(tmp_path / "b"), "--people", "12", "--size", "32x48", "--quiet")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = _cli("--out", str(tmp_path / "c"), "--size", "96by128")
    assert bad.returncode != 0 and "96by128" in bad.stderr and not (tmp_path / "c").exists()
