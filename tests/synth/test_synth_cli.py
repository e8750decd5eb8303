"""Determinism, atomic writes, argument errors, the contact sheet and the command line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.synth import contact_sheet, generate, layout, parse_size

REPO = Path(__file__).resolve().parents[2]


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

    real = layout._write_person
    monkeypatch.setattr(layout, "_write_person", failing)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "bench", people=24, size=(32, 48), progress=False, n_jobs=1)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(layout, "_write_person", real)
    root = generate(tmp_path / "bench", people=24, size=(32, 48), progress=False)
    assert (root / "bench.json").is_file() and [p.name for p in tmp_path.iterdir()] == ["bench"]


def test_existing_output_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(out, people=12, size=(32, 48), progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    generate(out, people=12, size=(32, 48), progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "train" / "train.csv").is_file()


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
