"""search/storage/trialstore.py: the validation set and the kept trials of a study, on disk beside its storage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from runners.classes import NUM_CLASSES
from search.storage.trialstore import TrialStore, Validation


def _validation(fingerprint: str = "abc", rows: tuple[int, ...] = (3, 1, 7)) -> Validation:
    n = len(rows)
    return Validation(np.array(rows, np.int64), np.arange(n, dtype=np.int64), np.array([f"p{i}" for i in range(n)]),
                      fingerprint)


def _save(store: TrialStore, number: int, value: float = 1.0) -> Path:
    probs = np.full((3, NUM_CLASSES), 1 / NUM_CLASSES, np.float64)  # stored as float32 whatever comes in
    return store.save_trial(number, {"w": torch.full((2, 2), value)}, probs, {"backbone": "test_resnet"},
                            {"status": "complete", "best_epoch": 1})


def test_a_study_name_becomes_a_safe_folder_name(tmp_path: Path) -> None:
    assert TrialStore(tmp_path, "age cutoff/../x").root == tmp_path / "trials" / "age_cutoff_.._x"


def test_validation_round_trips_and_missing_says_what_to_run(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, "s")
    with pytest.raises(FileNotFoundError, match="validation.npz is missing: run the study first"):
        store.load_validation()
    store.save_validation(_validation())
    back = store.load_validation()
    assert back.rows.tolist() == [3, 1, 7] and back.labels.tolist() == [0, 1, 2]
    assert back.people.tolist() == ["p0", "p1", "p2"] and back.fingerprint == "abc"


def test_saving_the_same_validation_again_is_a_no_op_and_other_data_is_refused(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, "s")
    store.save_validation(_validation())
    before = (store.root / "validation.npz").stat().st_mtime_ns
    store.save_validation(_validation())  # a resumed run or a second worker
    assert (store.root / "validation.npz").stat().st_mtime_ns == before
    for other in (_validation(fingerprint="xyz"), _validation(rows=(3, 1, 8))):
        with pytest.raises(ValueError, match="holds the validation set of other data"):
            store.save_validation(other)


def test_a_saved_trial_holds_weights_probabilities_config_and_summary(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    store = TrialStore(tmp_path, "s")
    folder = _save(store, 12)
    assert folder == store.trial_dir(12) and folder.name == "trial_00012"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "result.json", "val_probs.npy",
                                                         "weights.safetensors"]
    probs = store.load_probs(12)
    assert probs.dtype == np.float32 and probs.shape == (3, NUM_CLASSES)
    assert store.load_config(12) == {"backbone": "test_resnet"}
    assert json.loads((folder / "result.json").read_text())["best_epoch"] == 1
    assert torch.equal(load_file(str(store.weights_path(12)))["w"], torch.ones(2, 2))


def test_the_last_epoch_is_kept_apart_and_read_back_or_the_best_stands_for_it(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    store = TrialStore(tmp_path, "s")
    _save(store, 1)
    assert not store.has_last(1)
    np.testing.assert_array_equal(store.load_probs(1, last=True), store.load_probs(1))  # best is last
    assert store.weights_path(1, last=True) == store.weights_path(1)
    last_probs = np.eye(NUM_CLASSES, dtype=np.float32)[:3]
    store.save_trial(2, {"w": torch.ones(2, 2)}, np.full((3, NUM_CLASSES), 1 / NUM_CLASSES), {}, {},
                     last=({"w": torch.zeros(2, 2)}, last_probs))
    assert store.has_last(2)
    np.testing.assert_array_equal(store.load_probs(2, last=True), last_probs)
    assert not np.array_equal(store.load_probs(2), last_probs)
    assert torch.equal(load_file(str(store.weights_path(2, last=True)))["w"], torch.zeros(2, 2))
    assert torch.equal(load_file(str(store.weights_path(2)))["w"], torch.ones(2, 2))


def test_saving_a_trial_number_again_replaces_it_and_leaves_no_temporary_folder(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    store = TrialStore(tmp_path, "s")
    _save(store, 3, value=1.0)
    _save(store, 3, value=2.0)
    assert torch.equal(load_file(str(store.weights_path(3)))["w"], torch.full((2, 2), 2.0))
    assert [p.name for p in store.root.iterdir()] == ["trial_00003"]


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, "s")
    with pytest.raises(TypeError):
        store.save_trial(0, {"w": torch.ones(1)}, np.zeros((1, NUM_CLASSES)), {"bad": object()}, {})
    assert store.trial_numbers() == [] and list(store.root.iterdir()) == []


def test_trial_numbers_ignore_other_folders_and_retain_deletes_the_rest(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, "s")
    assert store.trial_numbers() == [], "no folder yet"
    for number in (0, 4, 9):
        _save(store, number)
    (store.root / ".trial_00005.tmp").mkdir()  # a save in progress
    (store.root / "notes").mkdir()
    assert store.trial_numbers() == [0, 4, 9]
    assert store.retain({4, 7}) == [0, 9]
    assert store.trial_numbers() == [4]


def test_retain_deletes_a_trial_that_kept_its_last_epoch_not_one_a_user_added_to(tmp_path: Path) -> None:
    """The last epoch's files are a trial's own (search.clean and keep_top delete such a folder);
    a file a user put in a trial folder keeps it."""
    store = TrialStore(tmp_path, "s")
    probs = np.full((3, NUM_CLASSES), 1 / NUM_CLASSES, np.float32)
    for number in (0, 1):
        last = ({"w": torch.zeros(2, 2)}, probs)
        store.save_trial(number, {"w": torch.ones(2, 2)}, probs, {}, {}, last=last)
    (store.trial_dir(1) / "notes.txt").write_text("mine")
    assert store.retain(set()) == [0]
    assert store.trial_numbers() == [1]


def test_a_hand_made_four_digit_trial_folder_counts_its_number_once(tmp_path: Path) -> None:
    store = TrialStore(tmp_path, "s")
    _save(store, 99)
    (store.root / "trial_0099").mkdir()
    assert store.trial_numbers() == [99]
