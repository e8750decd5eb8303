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
