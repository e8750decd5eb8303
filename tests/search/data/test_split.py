"""Point 7 (split by person) and point 6 (age cutoff moves training labels only)."""

from __future__ import annotations

import json
import os
import random
from collections import Counter

import numpy as np
import pytest

from search.data import DataError, PersonSplit, age_band, kfold_people, load_train, split_people


@pytest.fixture
def big(make_layout, many_people):
    lay = make_layout(people=many_people(150), eval_images=1, size=(8, 8), junk=False)
    return lay, load_train(lay.root)


def person_class(data, people) -> Counter:
    table = data.people.set_index("person").loc[list(people)]
    return Counter((table["gender"] * 3 + age_band(table["age"].to_numpy())).tolist())


def test_holdout_is_person_disjoint_seeded_and_stratified(big) -> None:
    _, data = big
    split = split_people(data, val_fraction=0.2, seed=3)
    assert not set(split.train_people) & set(split.val_people)
    assert set(split.train_people) | set(split.val_people) == set(data.people["person"])
    assert len(split.val_people) == 30
    assert list(split.val_people) == sorted(split.val_people)
    assert split_people(data, 0.2, seed=3) == split
    assert split_people(data, 0.2, seed=4).val_people != split.val_people
    whole, val = person_class(data, data.people["person"]), person_class(data, split.val_people)
    for cls, n in whole.items():
        assert abs(val[cls] - 0.2 * n) <= 1.0, (cls, n, val[cls])


def test_same_split_whatever_the_listing_and_csv_order(big, monkeypatch) -> None:
    lay, data = big
    expected = split_people(data, seed=0)
    folds = [f.val_people for f in kfold_people(data, 5, seed=0)]
    table = lay.csv()
    lay.write_csv(table.sample(frac=1.0, random_state=1))
    real_scandir, real_listdir = os.scandir, os.listdir
    rng = random.Random(7)

    def shuffled(items):
        items = list(items)
        rng.shuffle(items)
        return items

    monkeypatch.setattr(os, "scandir", lambda p=".": iter(shuffled(real_scandir(p))))
    monkeypatch.setattr(os, "listdir", lambda p=".": shuffled(real_listdir(p)))
    again = load_train(lay.root)
    monkeypatch.undo()
    assert split_people(again, seed=0) == expected
    assert [f.val_people for f in kfold_people(again, 5, seed=0)] == folds
    assert np.array_equal(again.labels, data.labels) and again.paths == data.paths


def test_kfold_partitions_people(big) -> None:
    _, data = big
    folds = kfold_people(data, n_splits=5, seed=1)
    assert len(folds) == 5
    vals = [set(f.val_people) for f in folds]
    assert set().union(*vals) == set(data.people["person"])
    assert sum(len(v) for v in vals) == len(data.people)
    for f in folds:
        assert not set(f.train_people) & set(f.val_people)
        assert 25 <= len(f.val_people) <= 35
    assert [f.method for f in folds] == [f"kfold:{k}/5" for k in range(5)]


def test_indices_and_roundtrip(big) -> None:
    _, data = big
    split = split_people(data, seed=0)
    stored = json.loads(json.dumps(split.to_dict()))
    assert PersonSplit.from_dict(stored) == split
    train, val = split.indices(data)
    assert train.dtype == np.int64 and len(train) + len(val) == len(data.images)
    assert set(data.images["person"].iloc[val]) == set(split.val_people)
    assert len(val) == 7 * len(split.val_people)


def test_stale_or_broken_split_is_refused(big) -> None:
    _, data = big
    split = split_people(data, seed=0)
    ghost = PersonSplit(split.train_people + ("zzz_ghost",), split.val_people, 0, "holdout:0.2")
    with pytest.raises(DataError, match="names 1 people not in"):
        ghost.indices(data)
    with pytest.raises(DataError, match="both sides"):
        PersonSplit(("a", "b"), ("b",), 0, "x")
    with pytest.raises(DataError, match="exactly the keys"):
        PersonSplit.from_dict({"val_people": []})


def test_tiny_data_with_singleton_classes_still_splits(layout) -> None:
    data = load_train(layout.root)  # 13 people, some classes have one person
    split = split_people(data, val_fraction=0.3, seed=0)
    assert len(split.val_people) == 4 and not set(split.train_people) & set(split.val_people)
    assert len(kfold_people(data, 3, seed=0)) == 3
    with pytest.raises(DataError, match="folds of 13 people"):
        kfold_people(data, 20)


def test_cutoff_changes_training_labels_only(big) -> None:
    _, data = big
    trial58, trial60 = load_train(big[0].root), load_train(big[0].root)  # two trials, two loads
    split58, split60 = split_people(trial58, seed=0), split_people(trial60, seed=0)
    assert split58 == split60
    tr58, va58 = split58.indices(trial58)
    tr60, va60 = split60.indices(trial60)
    # validation is scored on canonical labels, identical for both trials
    assert np.array_equal(trial58.labels[va58], trial60.labels[va60])
    y58, y60 = trial58.training_labels(58), trial60.training_labels(60)
    assert np.array_equal(y60, trial60.labels)
    ages = trial58.images["age"].to_numpy()
    differs = y58 != y60
    assert differs.any() and set(ages[differs]) == {58, 59}
    assert np.array_equal(differs, np.isin(ages, [58, 59]))
    assert np.all(y58[differs] == y60[differs] + 1)  # band 1 -> band 2, nothing else moves
    y59 = trial58.training_labels(59)
    assert set(ages[y59 != y60]) == {59}


def test_kfold_is_stratified_by_person_class(big) -> None:
    _, data = big
    classes = dict(zip(data.people["person"].astype(str), data.person_classes().tolist(), strict=True))
    total = Counter(classes.values())
    for fold in kfold_people(data, n_splits=4, seed=3):
        held = Counter(classes[p] for p in fold.val_people)
        for cls, n in total.items():
            assert abs(held[cls] - n / 4) <= 1, (cls, held[cls], n)
