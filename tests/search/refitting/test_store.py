"""search/refit/store.py: a model folder is written whole, over its own earlier model only, and a
killed refit's temporary folder is removed by the next save of the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.common.outputs import OutputExistsError
from search.refitting.store import RefitStore
from search.storage.trialstore import TrialStore
from tests.search.verbs.test_clean import _killed_build


def _save(store: RefitStore, folder: Path, epochs: int) -> Path:
    return store.save_model(folder, {"w": torch.zeros(2)}, {"epochs": epochs}, {"epochs": epochs})


def test_the_next_refit_removes_what_a_killed_refit_left(tmp_path: Path) -> None:
    store = RefitStore(TrialStore(tmp_path, "s"), 3)
    fold = store.fold_dir(5, 1)
    left = _killed_build(fold)
    _save(store, fold, 1)
    assert not left.exists() and [p.name for p in fold.parent.iterdir()] == ["fold_1"]
    assert store.load_model(fold).config == {"epochs": 1}


def test_a_model_folder_replaces_its_own_model_only(tmp_path: Path) -> None:
    store = RefitStore(TrialStore(tmp_path, "s"), 3)
    folder = store.all_dir()
    _save(store, folder, 1)
    _save(store, folder, 2)  # a rerun's model replaces the earlier one
    assert store.load_model(folder).config == {"epochs": 2}
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="it holds notes.txt, which this verb does not write"):
        _save(store, folder, 3)
    assert (folder / "notes.txt").read_text() == "mine" and store.load_model(folder).config == {"epochs": 2}
    assert [p.name for p in folder.parent.iterdir()] == ["all"]
