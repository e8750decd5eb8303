from __future__ import annotations

import numpy as np
import pytest

from runners import classification_metrics


def test_macro_f1_counts_all_18_classes() -> None:
    labels = np.array([0, 0, 1, 1])
    perfect = classification_metrics(labels, labels)
    assert perfect.accuracy == 1.0
    assert perfect.macro_f1 == pytest.approx(2 / 18)  # 16 absent classes score 0, not skipped
    assert perfect.per_class_f1[:2] == [1.0, 1.0] and perfect.per_class_f1[2:] == [0.0] * 16
    assert perfect.confusion.shape == (18, 18) and perfect.confusion[0, 0] == 2


def test_accuracy_and_f1_disagree_on_imbalance() -> None:
    labels = np.array([0] * 9 + [17])
    always_zero = classification_metrics(labels, np.zeros(10, dtype=np.int64))
    assert always_zero.accuracy == 0.9
    assert always_zero.per_class_f1[17] == 0.0 and always_zero.confusion[17, 0] == 1  # rows are truth
    with pytest.raises(ValueError, match="equal length"):
        classification_metrics(labels, labels[:-1])


def test_macro_f1_and_accuracy_score_probabilities_by_their_arg_max() -> None:
    from runners.classes import NUM_CLASSES
    from runners.metrics import accuracy, macro_f1

    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, 50)
    probs = rng.random((50, NUM_CLASSES))
    whole = classification_metrics(labels, probs.argmax(1))
    assert macro_f1(labels, probs) == macro_f1(labels, probs.argmax(1)) == whole.macro_f1
    assert accuracy(labels, probs) == whole.accuracy


def test_the_counted_f1_is_sklearns_on_all_18_classes() -> None:
    from sklearn.metrics import confusion_matrix, f1_score

    from runners.metrics import macro_f1

    rng = np.random.default_rng(1)
    for n in (1, 7, 300):
        labels, preds = rng.integers(0, 18, n), rng.integers(0, 18, n)
        preds[: n // 2] = labels[: n // 2]
        got = classification_metrics(labels, preds)
        classes = list(range(18))
        assert got.per_class_f1 == pytest.approx(f1_score(labels, preds, labels=classes, average=None,
                                                          zero_division=0), abs=1e-12)
        assert macro_f1(labels, preds) == got.macro_f1 == pytest.approx(
            f1_score(labels, preds, labels=classes, average="macro", zero_division=0), abs=1e-12)
        assert np.array_equal(got.confusion, confusion_matrix(labels, preds, labels=classes))


def test_a_class_outside_the_18_is_named() -> None:
    with pytest.raises(ValueError, match=r"preds must be classes 0..17 but hold 0..18"):
        classification_metrics(np.array([0, 1]), np.array([0, 18]))
    with pytest.raises(ValueError, match="empty validation set"):
        classification_metrics(np.array([], dtype=np.int64), np.array([], dtype=np.int64))


def test_the_spread_over_people_is_a_bootstrap_of_whole_people() -> None:
    from runners.metrics import macro_f1, macro_f1_people_sd

    rng = np.random.default_rng(3)
    people = np.repeat([f"p{i}" for i in range(40)], 5)
    labels = np.repeat(rng.integers(0, 18, 40), 5)
    preds = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 18, 200))
    ids, person = np.unique(people, return_inverse=True)
    picks = np.random.default_rng(7).integers(0, len(ids), (50, len(ids)))
    direct = [macro_f1(labels[rows], preds[rows]) for rows in
              (np.concatenate([np.flatnonzero(person == i) for i in draw]) for draw in picks)]
    assert macro_f1_people_sd(labels, preds, people, draws=50, seed=7) == pytest.approx(np.std(direct))
    assert macro_f1_people_sd(labels, preds, np.full(200, "one")) == 0.0  # one person: nothing to draw
    with pytest.raises(ValueError, match="same length"):
        macro_f1_people_sd(labels, preds, people[:10])
