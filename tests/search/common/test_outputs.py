"""search/common/outputs.py and the temporary folders of search/common/atomic.py: a verb writes over nothing it
did not write, and the folders of a killed build are found (and only those)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from search.common.atomic import remove_stale_temp_dirs, stale_temp_dirs, swap_dir, temp_dir
from search.common.outputs import Output, OutputExistsError, claim, marked_file, marked_folder

REPO = Path(__file__).resolve().parents[3]
FOLDER = Output(
    "a test bench", "python -m test", lambda p: marked_folder(p, "m.json", lambda m: m == 1, {"m.json"})
)
FILE = Output("a note", "python -m note", lambda p: marked_file(p, lambda b: b.startswith(b"NOTE")), None,
              folder=False)


def test_missing_and_empty_targets_are_free(tmp_path: Path) -> None:
    claim(tmp_path / "new", FOLDER)
    (tmp_path / "empty").mkdir()
    claim(tmp_path / "empty", FOLDER)
    with pytest.raises(OutputExistsError, match="it is a folder, not a file"):
        claim(tmp_path / "empty", FILE)  # a file output never writes over a folder


def test_own_output_needs_the_flag_and_foreign_output_is_refused_even_with_it(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "m.json").write_text("1")
    with pytest.raises(OutputExistsError, match=f"--out {own} already exists .*pass --overwrite to replace"):
        claim(own, FOLDER)
    claim(own, FOLDER, overwrite=True)
    (own / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="it holds notes.txt, which this verb does not write"):
        claim(own, FOLDER, overwrite=True)
    (own / "notes.txt").unlink()
    (own / "m.json").write_text("2")
    with pytest.raises(OutputExistsError, match="its m.json was not written by this verb"):
        claim(own, FOLDER, overwrite=True)
    link = tmp_path / "link"
    link.symlink_to(own)
    (own / "m.json").write_text("1")
    with pytest.raises(OutputExistsError, match="it is a symbolic link"):
        claim(link, FOLDER, overwrite=True)


def test_a_file_output_replaces_its_own_file_without_a_flag_and_nothing_else(tmp_path: Path) -> None:
    note = tmp_path / "n.txt"
    note.write_text("NOTE 1")
    claim(note, FILE)
    readme = tmp_path / "README.md"
    readme.write_text("# mine")
    with pytest.raises(OutputExistsError) as info:
        claim(readme, FILE, overwrite=True)
    assert str(info.value) == (
        f"--out {readme} is not a note written by python -m note (its contents are not this verb's), so "
        "nothing was deleted or overwritten. Choose another --out."
    )


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "print(__import__('os').getpid())"], capture_output=True,
                          text=True)
    return int(done.stdout)


def _leftover(target: Path, pid: int) -> Path:
    tmp = target.with_name(f".{target.name}.tmp-{pid}-0123456789ab.tmp")
    (tmp / "members").mkdir(parents=True)
    (tmp / "members" / "0.safetensors").write_bytes(b"weights")
    return tmp


def test_a_killed_build_leaves_a_folder_the_next_build_removes(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    code = (
        "import os, signal, sys\n"
        "from search.common.atomic import temp_dir\n"
        "with temp_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'weights').write_bytes(b'x' * 1000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO, env=env)
    assert done.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".bundle.tmp-") and stale_temp_dirs(tmp_path) == [left]
    with temp_dir(target) as tmp:
        assert not left.exists(), "the next build of the same target removes the leftover"
        (tmp / "m.json").write_text("1")
        swap_dir(tmp, target)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_a_live_build_and_other_folders_are_never_taken_for_leftovers(tmp_path: Path) -> None:
    dead = _dead_pid()
    held = _leftover(tmp_path / "a", dead)
    fd = os.open(held, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live build on another host: its pid means nothing here
    try:
        alive = _leftover(tmp_path / "b", os.getpid())  # unlocked, but its process runs
        other = _leftover(tmp_path / "c", dead)
        assert stale_temp_dirs(tmp_path) == [other]
        assert stale_temp_dirs(tmp_path, "b") == [] and stale_temp_dirs(tmp_path, "c") == [other]
        (tmp_path / ".c.tmp-1-notours.tmp").mkdir()  # not the temporary name's pattern
        (tmp_path / "user").mkdir()
        assert remove_stale_temp_dirs(tmp_path) == [other]
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [held.name, alive.name, ".c.tmp-1-notours.tmp", "user"]
        )
    finally:
        os.close(fd)


def test_an_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), temp_dir(tmp_path / "x") as tmp:
        (tmp / "half").write_text("h")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_marker_that_is_not_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_bytes(b"\xff\xfe")
    reason = marked_folder(tmp_path, "m.json", lambda m: True, {"m.json"})
    assert reason == "its m.json cannot be read (UnicodeDecodeError)"
    (tmp_path / "m.json").write_text(json.dumps([1]))
    assert marked_folder(tmp_path, "m.json", lambda m: isinstance(m, dict), {"m.json"}) == (
        "its m.json was not written by this verb"
    )
