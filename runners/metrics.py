"""Validation metrics over all classes (runners/classes.py), the numbers every trial is judged by."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from runners.classes import NUM_CLASSES
CLASSES = list(range(NUM_CLASSES))


@dataclass
class ClassificationMetrics:
    macro_f1: float
    accuracy: float
    per_class_f1: list[float]  # NUM_CLASSES values, class order
    confusion: np.ndarray  # (NUM_CLASSES, NUM_CLASSES) int64, rows = truth, columns = prediction


def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> ClassificationMetrics:
    """Macro-F1 over all classes (absent classes score 0, as the competition did)."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if labels.shape != preds.shape or labels.ndim != 1:
        raise ValueError(f"labels and preds must be 1-D of equal length but got {labels.shape} and {preds.shape}.")
    if labels.size == 0:
        raise ValueError("cannot score an empty validation set: it needs at least one image.")
    per_class = f1_score(labels, preds, labels=CLASSES, average=None, zero_division=0)
    return ClassificationMetrics(
        macro_f1=macro_f1(labels, preds),
        accuracy=accuracy(labels, preds),
        per_class_f1=[float(v) for v in per_class],
        confusion=confusion_matrix(labels, preds, labels=CLASSES).astype(np.int64),
    )


def macro_f1(labels: np.ndarray, probs_or_preds: np.ndarray) -> float:
    """Macro-F1 over all classes (absent classes count as 0, as the competition did); an (n, C)
    array of probabilities is scored by its arg-max."""
    preds = _preds(probs_or_preds)
    return float(f1_score(labels, preds, labels=CLASSES, average="macro", zero_division=0))


def accuracy(labels: np.ndarray, probs_or_preds: np.ndarray) -> float:
    return float(accuracy_score(labels, _preds(probs_or_preds)))


def _preds(probs_or_preds: np.ndarray) -> np.ndarray:
    arr = np.asarray(probs_or_preds)
    return arr.argmax(1) if arr.ndim == 2 else arr.astype(np.int64)
