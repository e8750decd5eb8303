"""search.common.atomic: a write completes under its name, or leaves the old file and no temporary."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from search.common.atomic import atomic_path, swap_dir, write_bytes, write_json, write_text


def test_writes_text_bytes_and_json_with_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "hello")
        write_bytes(tmp_path / "sub" / "b.bin", b"\x00\x01")
        write_json(tmp_path / "c.json", {"x": [1, 2]})
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.json", "sub"]


def test_an_error_mid_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("the old report")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half of the new re")
        raise RuntimeError("disk full")
    assert target.read_text() == "the old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_value_json_cannot_hold_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("{}")
    with pytest.raises(TypeError):
        write_json(target, {"bad": object()})
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_memmap_and_a_folder_can_be_built_in_the_temporary_path(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "arr.npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(2, 3))
        out[:] = 7
        out.flush()
        del out
    assert np.load(tmp_path / "arr.npy").sum() == 42
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "bench") as tmp:
        (tmp / "train").mkdir(parents=True)
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arr.npy"]


def test_swap_dir_replaces_a_full_folder_and_leaves_no_backup(tmp_path: Path) -> None:
    target, new = tmp_path / "bundle", tmp_path / ".bundle.new"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    swap_dir(new, target)
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_the_trial_store_replaces_a_trial_folder_whole(tmp_path: Path) -> None:
    import torch

    from search.storage.trialstore import TrialStore

    store = TrialStore(tmp_path, "s")
    for value in (1.0, 2.0):  # a rerun of the same trial number replaces the folder
        store.save_trial(3, {"w": torch.full((2,), value)}, np.zeros((4, 18)), {"lr": value}, {"value": value})
    assert store.trial_numbers() == [3] and store.load_config(3) == {"lr": 2.0}
    assert [p.name for p in store.root.iterdir()] == [store.trial_dir(3).name]  # no temporary or old folder left
    with pytest.raises(TypeError), atomic_path(tmp_path / "x.npy") as tmp, open(tmp, "xb") as f:
        np.save(f, np.zeros(2))
        raise TypeError("stop")
    assert not list(tmp_path.glob(".x.npy*"))
