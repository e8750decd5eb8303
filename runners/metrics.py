"""Validation metrics over all classes (runners/classes.py), the numbers every trial is judged by.

F1 is counted from the confusion matrix (one ``bincount``), exactly as sklearn's
``f1_score(average=None/"macro", labels=all 18, zero_division=0)`` defines it, at a fraction of its
cost: the ensemble's selection and decision rule score thousands of candidate votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runners.classes import NUM_CLASSES


@dataclass
class ClassificationMetrics:
    macro_f1: float
    accuracy: float
    per_class_f1: list[float]  # NUM_CLASSES values, class order
    confusion: np.ndarray  # (NUM_CLASSES, NUM_CLASSES) int64, rows = truth, columns = prediction


def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> ClassificationMetrics:
    """Macro-F1 over all classes (absent classes score 0, as the competition did)."""
    confusion = confusion_matrix(labels, preds)
    per_class = _f1_per_class(confusion)
    return ClassificationMetrics(
        macro_f1=float(per_class.sum() / NUM_CLASSES),
        accuracy=float(np.trace(confusion) / confusion.sum()),
        per_class_f1=[float(v) for v in per_class],
        confusion=confusion,
    )


def macro_f1(labels: np.ndarray, probs_or_preds: np.ndarray) -> float:
    """Macro-F1 over all classes (absent classes count as 0, as the competition did); an (n, C)
    array of probabilities is scored by its arg-max."""
    return float(_f1_per_class(confusion_matrix(labels, _preds(probs_or_preds))).sum() / NUM_CLASSES)


def accuracy(labels: np.ndarray, probs_or_preds: np.ndarray) -> float:
    confusion = confusion_matrix(labels, _preds(probs_or_preds))
    return float(np.trace(confusion) / confusion.sum())


def confusion_matrix(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """(NUM_CLASSES, NUM_CLASSES) int64 counts, rows = truth, columns = prediction."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape or labels.ndim != 1:
        raise ValueError(f"labels and preds must be 1-D of equal length but got {labels.shape} and {preds.shape}.")
    if labels.size == 0:
        raise ValueError("cannot score an empty validation set: it needs at least one image.")
    for name, values in (("labels", labels), ("preds", preds)):
        if values.min() < 0 or values.max() >= NUM_CLASSES:
            raise ValueError(f"{name} must be classes 0..{NUM_CLASSES - 1} but hold {values.min()}..{values.max()}.")
    counts = np.bincount(labels * NUM_CLASSES + preds, minlength=NUM_CLASSES * NUM_CLASSES)
    return counts.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.int64)


def macro_f1_people_sd(
    labels: np.ndarray, probs_or_preds: np.ndarray, people: np.ndarray, draws: int = 200, seed: int = 0
) -> float:
    """Standard deviation of ``macro_f1`` over bootstrap draws of whole people (``people``: the person
    of each row): how far a score measured on these few people is a draw of them. Each person's
    confusion counts are summed once; a draw is a weighted sum of them."""
    labels = np.asarray(labels, dtype=np.int64)
    cells = labels * NUM_CLASSES + _preds(probs_or_preds)
    ids, person = np.unique(np.asarray(people).astype(str), return_inverse=True)
    if len(ids) != 0 and len(cells) != len(person):
        raise ValueError(f"labels and people must have the same length but got {len(cells)} and {len(person)}.")
    if len(ids) < 2:
        return 0.0
    per_person = np.zeros((len(ids), NUM_CLASSES * NUM_CLASSES))
    np.add.at(per_person, (person, cells), 1)
    picks = np.random.default_rng(seed).integers(0, len(ids), (draws, len(ids)))
    counts = np.stack([np.bincount(row, minlength=len(ids)) for row in picks])
    confusions = (counts @ per_person).reshape(draws, NUM_CLASSES, NUM_CLASSES)
    return float(np.std([_f1_per_class(c).sum() / NUM_CLASSES for c in confusions]))


def _f1_per_class(confusion: np.ndarray) -> np.ndarray:
    tp = np.diag(confusion).astype(np.float64)
    denom = 2 * tp + (confusion.sum(axis=0) - tp) + (confusion.sum(axis=1) - tp)
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def _preds(probs_or_preds: np.ndarray) -> np.ndarray:
    arr = np.asarray(probs_or_preds)
    return arr.argmax(1) if arr.ndim == 2 else arr.astype(np.int64)
