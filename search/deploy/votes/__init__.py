"""How an ensemble's members are combined: the registry ``VOTES`` of named votes.

A vote is written once, as what each member adds (its *parts*, from its probabilities) and how the
weighted sums of those parts become the ensemble's probabilities (*decide*), in numpy (selection,
the honest estimate) and in torch (the bundle's torch module, and through it the ONNX graph). The
greedy selection adds parts pick by pick; ``combine`` adds them with normalised weights. A new vote
is one module of this package registering one ``Vote`` (its modules are imported here), plus its
test and a line in docs/ensemble.md; selection, the honest estimate, the manifest, the torch
module and the ONNX graph take it from the registry.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runners.registry import Registry


@dataclass(frozen=True)
class Vote:
    """One way to combine members; ``decide`` of the weighted part sums gives probabilities whose
    argmax is the decision. Torch functions take and return tensors (imported where used)."""

    name: str
    label: str  # what the comparison table adds to the ensemble's row: "" for the soft vote
    summary: str  # one line for --vote's help
    parts: Any  # np (n, C) probabilities -> tuple of np arrays a member adds (times its weight)
    decide: Any  # tuple of np weighted sums -> np (n, C) probabilities
    torch_parts: Any  # the same two in torch, for the bundle's module and its ONNX graph
    torch_decide: Any
    takes_decision_rule: bool = False  # the macro-F1 decision rule shifts this vote's log-probabilities


VOTES: Registry[Vote] = Registry("vote")


def combine(probs: Sequence[np.ndarray], weights: Sequence[float] | None, vote: str = "soft") -> np.ndarray:
    """The members' ``vote`` with ``weights`` (normalised to sum to 1; None: equal)."""
    if len(probs) == 0:
        raise ValueError(f"a {vote} vote needs at least one probability matrix but got none.")
    chosen = VOTES.get(vote)
    w = normalised(len(probs), weights)
    sums: list[np.ndarray] | None = None
    for p, wi in zip(probs, w, strict=True):
        parts = chosen.parts(np.asarray(p, dtype=np.float64))
        if sums is None:
            sums = [np.zeros_like(part) for part in parts]
        for total, part in zip(sums, parts, strict=True):
            total += wi * part
    return chosen.decide(tuple(sums or ()))


def normalised(n: int, weights: Sequence[float] | None) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    with np.errstate(over="ignore"):
        total = w.sum() if w.shape == (n,) else 0.0
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or total <= 0:
        raise ValueError(f"vote weights must be {n} finite values >= 0, not all 0, but got {weights!r}.")
    if not np.isfinite(total):  # each finite, their sum not: scale down before normalising
        w = w / w.max()
    return w / w.sum()


# Every module of this package registers its vote: soft (the default) and hard first, so that
# listings and messages name them in that order, then the others by name.
for _module in dict.fromkeys(["_soft", "_hard", *sorted(m.name for m in pkgutil.iter_modules(__path__))]):
    importlib.import_module(f"{__name__}.{_module}")
