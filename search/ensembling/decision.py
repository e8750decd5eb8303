"""A decision rule for macro-F1: per-class offsets added to the vote's log-probabilities.

Argmax of averaged probabilities maximises accuracy, not macro-F1: the rare classes (the old
band above all: 83 of 2,700 people per gender in the real data) are predicted too seldom,
and each of the 18 classes weighs the same in the score. Shifting the log-probabilities by an
offset per class and then taking the argmax trades a few errors on large classes for hits on
small ones.

The offsets are a logit adjustment: ``offset[c] = -tau * log(prior[c])`` (centred), with the
class priors counted on the rows the rule is fitted on and ``tau`` the one number chosen, on a
grid, to maximise macro-F1 there. One number, because the rule is fitted on validation people
only (a few dozen per rare class) and macro-F1 over 18 classes is a noisy target: on real faces,
fitting five per-task offsets by coordinate ascent raised in-sample macro-F1 by 0.03-0.05 and
lowered it by 0.01-0.04 on the held-out half, while the one-number rule kept most of its gain.
Fit it on people the rule is not scored on: ``search.ensembling.honest`` fits on one half and
scores on the other.

Where the old line falls is chosen the same way: an old-band offset ``delta`` added to the six
old classes (age band 2) moves the line between "30-59" and ">= 60" in the vote, which a prior
cannot do (the old band is where every model here fails, docs/domain.md). ``tau`` and ``delta``
are chosen together on a grid for macro-F1, ``delta = 0`` (today's rule) first among ties, so
the rule only moves the line when that scores better on the people it is fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runners.classes import NUM_CLASSES, OLD_BAND, decompose
from runners.metrics import macro_f1

TAUS = np.round(np.arange(0.0, 1.5 + 1e-9, 0.1), 2)  # tau = 1: fully balanced classes
# old-band offsets, the smallest first so that ties keep the line where the vote puts it
OLD_BAND_OFFSETS = np.array(sorted(np.round(np.arange(-1.0, 3.0 + 1e-9, 0.25), 2), key=lambda d: (abs(d), d)))
OLD_CLASSES = (decompose(np.arange(NUM_CLASSES))[2] == OLD_BAND).astype(np.float64)  # 1 on the six old classes
_EPS = 1e-7


@dataclass(frozen=True)
class DecisionRule:
    """The fitted rule: ``offsets = tau * prior_direction + old_band_offset * OLD_CLASSES``."""

    tau: float
    old_band_offset: float
    offsets: np.ndarray  # (NUM_CLASSES,)


def prior_direction(labels: np.ndarray) -> np.ndarray:
    """``-log(prior)`` per class, centred; priors counted with one pseudo-count per class."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES).astype(np.float64) + 1.0
    direction = -np.log(counts / counts.sum())
    return direction - direction.mean()


def apply_offsets(probs: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """``softmax(log(probs) + offsets)``: still probabilities; their argmax is the rule's decision."""
    if offsets is None or not np.any(offsets):
        return probs
    logits = np.log(np.clip(probs, _EPS, None)) + np.asarray(offsets, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(probs.dtype)


def fit_rule(probs: np.ndarray, labels: np.ndarray, old_band: bool = True) -> DecisionRule:
    """The ``tau`` (and, with ``old_band``, the old-band offset) that maximise macro-F1 of
    ``argmax(log(probs) + offsets)`` on these rows; the smallest offset, then the smallest tau,
    among ties."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return DecisionRule(0.0, 0.0, np.zeros(NUM_CLASSES))
    log_probs = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, None))
    direction = prior_direction(labels)
    grid = [(d, t) for d in (OLD_BAND_OFFSETS if old_band else (0.0,)) for t in TAUS]
    scores = [
        macro_f1(labels, np.argmax(log_probs + t * direction + d * OLD_CLASSES, axis=1)) for d, t in grid
    ]
    delta, tau = grid[int(np.argmax(scores))]  # the first among ties
    return DecisionRule(float(tau), float(delta), tau * direction + delta * OLD_CLASSES)


def fit_offsets(probs: np.ndarray, labels: np.ndarray, old_band: bool = True) -> np.ndarray:
    """Class offsets (18,) that maximise macro-F1 of ``argmax(log(probs) + offsets)`` on these rows."""
    return fit_rule(probs, labels, old_band).offsets
