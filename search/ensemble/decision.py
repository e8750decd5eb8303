"""A decision rule for macro-F1: per-class offsets added to the vote's log-probabilities.

Argmax of averaged probabilities maximises accuracy, not macro-F1: the rare classes (the old
band above all: 83 of 2,700 people per gender in the real data) are predicted too seldom,
and each of the 18 classes weighs the same in the score. Shifting the log-probabilities by an
offset per class and then taking the argmax trades a few errors on large classes for many
hits on small ones.

The offsets are built from per-task terms, ``offset[c] = mask_term[m] + gender_term[g] +
age_term[a]`` with the first term of each task fixed at 0: five numbers fitted instead of 17,
because they are fitted on the validation people only (a few dozen per rare class), and the
bias to correct is per task (too few "old", too few "incorrect"). Coordinate ascent over a
grid, a few passes, ties broken towards 0. Fit them on people the rule is not scored on:
``search.ensemble.honest`` fits on one half and scores on the other.
"""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 18
GRID = np.round(np.arange(-3.0, 3.0 + 1e-9, 0.25), 2)  # candidate values of one task term
PASSES = 3
_EPS = 1e-7
_CLASS = np.arange(NUM_CLASSES)
_TASKS = (_CLASS // 6, (_CLASS // 3) % 2, _CLASS % 3)  # mask, gender, age band of each class


def _macro_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """Macro-F1 over the 18 classes, as ``selection.macro_f1`` counts it, without sklearn's overhead."""
    cm = np.bincount(labels * NUM_CLASSES + preds, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)
    tp = np.diag(cm).astype(np.float64)
    denom = 2 * tp + (cm.sum(axis=0) - tp) + (cm.sum(axis=1) - tp)
    return float(np.sum(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)) / NUM_CLASSES)


def offsets_from_terms(terms: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """The 18 class offsets of per-task terms (mask 3, gender 2, age band 3)."""
    return (terms[0][_TASKS[0]] + terms[1][_TASKS[1]] + terms[2][_TASKS[2]]).astype(np.float64)


def apply_offsets(probs: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """``softmax(log(probs) + offsets)``: still probabilities; their argmax is the rule's decision."""
    if offsets is None or not np.any(offsets):
        return probs
    logits = np.log(np.clip(probs, _EPS, None)) + np.asarray(offsets, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(probs.dtype)


def fit_offsets(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Class offsets (18,) that maximise macro-F1 of ``argmax(log(probs) + offsets)`` on these rows."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return np.zeros(NUM_CLASSES)
    log_probs = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, None))
    terms = (np.zeros(3), np.zeros(2), np.zeros(3))

    def score(t: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
        return _macro_f1(labels, np.argmax(log_probs + offsets_from_terms(t), axis=1))

    best = score(terms)
    for _ in range(PASSES):
        improved = False
        for term in terms:
            for k in range(1, len(term)):  # term[0] stays 0: only differences within a task matter
                keep = term[k]
                values = sorted(GRID, key=abs)  # ties go to the smallest shift
                scores = []
                for v in values:
                    term[k] = v
                    scores.append(score(terms))
                i = int(np.argmax(scores))
                if scores[i] > best + 1e-12:
                    best, term[k], improved = scores[i], values[i], True
                else:
                    term[k] = keep
        if not improved:
            break
    return offsets_from_terms(terms)
