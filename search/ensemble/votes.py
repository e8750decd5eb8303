"""How an ensemble's members are combined: a soft vote or a hard vote, with learned or given weights.

- soft: the weighted mean of the members' probabilities.
- hard: each member votes for its argmax class with its weight; a tie between the top classes is
  broken by the soft vote (the weighted mean of probabilities). The result is returned as
  probabilities whose argmax is the decision: the vote shares, with the tied top classes lifted
  to the top share plus ``TIE_SCALE`` x their soft vote, renormalised. search/deploy/graph.py
  computes the very same formula in the exported graph.

Weights are learned (the greedy selection's pick counts on the selection half, each pick
scored with the vote that ships, see search/ensemble/selection.py) unless the user gives them
(``--weights``), naming the members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VOTES = ("soft", "hard")
MAX_WEIGHT = 1e6  # a member's vote weight; the bundle manifest refuses more (search.deploy.manifest.MAX_WEIGHT)
TIE_TOLERANCE = 1e-6  # vote totals closer than this are a tie (weights are floats)
TIE_SCALE = 1e-6  # lift of a tied class per unit of its soft-vote probability


@dataclass(frozen=True)
class VoteSpec:
    """The vote an ensemble ships: ``vote`` and, when given, the members and their weights."""

    vote: str = "soft"
    given: tuple[tuple[str, float], ...] | None = None  # (candidate name "study#N", weight); None = learned
    old_band: bool = True  # the decision rule also fits an old-band offset (search.ensemble.decision)

    def __post_init__(self) -> None:
        if self.vote not in VOTES:
            raise ValueError(f"vote must be one of {list(VOTES)} but got {self.vote!r}.")
        if self.given is not None:
            if not self.given:
                raise ValueError("given weights must name at least one member.")
            names = [n for n, _ in self.given]
            if len(set(names)) != len(names):
                raise ValueError(f"given weights name a member twice: {names}.")
            for name, w in self.given:
                if not np.isfinite(w) or w < 0:
                    raise ValueError(f"the weight of {name} must be a finite number >= 0 but is {w!r}.")
            if sum(w for _, w in self.given) <= 0:
                raise ValueError("given weights are all 0, so the vote is undefined; give one a weight > 0.")

    @property
    def method(self) -> str:
        """The name of the ensemble row in the comparison table."""
        base = "selected ensemble" if self.given is None else "given weights"
        return base if self.vote == "soft" else f"{base}, hard vote"

    @property
    def rule_method(self) -> str | None:
        """The name of its decision-rule row; None for a hard vote (the rule shifts probabilities)."""
        if self.vote != "soft":
            return None
        return "selected + decision rule" if self.given is None else "given weights + decision rule"

    def to_dict(self) -> dict[str, object]:
        return {
            "vote": self.vote,
            "weights": "learned on the selection people" if self.given is None else dict(self.given),
            "old_band_offset": "fitted with the decision rule" if self.old_band else "off",
        }


def parse_weights(text: str, study: str) -> tuple[tuple[str, float], ...]:
    """``"3=2,7=1"`` or ``"age_cutoff#3=2,other#7=1"``: members by trial number (of ``study``) or
    by name, each with its weight."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value) if sep else float("nan")
        except ValueError:
            weight = float("nan")
        if not sep or not name or not np.isfinite(weight):
            raise ValueError(
                f"--weights entry {part!r} must be TRIAL=WEIGHT (e.g. 3=2 or {study}#3=2), the weight "
                "a number."
            )
        if not 0 <= weight <= MAX_WEIGHT:
            raise ValueError(
                f"--weights entry {part!r}: the weight must be from 0 to {MAX_WEIGHT:g} (only their ratios "
                f"matter, e.g. 3=2,7=1), but is {weight:g}."
            )
        out.append((name if "#" in name else f"{study}#{name}", weight))
    if not out:
        raise ValueError(f"--weights {text!r} names no member; give TRIAL=WEIGHT pairs such as 3=2,7=1.")
    return tuple(out)


def soft_vote(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted average of probability matrices; weights are normalised to sum to 1."""
    if len(probs) == 0:
        raise ValueError("soft_vote needs at least one probability matrix but got none.")
    w = _normalised(len(probs), weights)
    out = np.zeros_like(np.asarray(probs[0], dtype=np.float64))
    for p, wi in zip(probs, w, strict=True):
        out += wi * np.asarray(p, dtype=np.float64)
    return out


def hard_vote(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted majority of the members' argmax classes, ties broken by the soft vote (module doc)."""
    if len(probs) == 0:
        raise ValueError("hard_vote needs at least one probability matrix but got none.")
    w = _normalised(len(probs), weights)
    first = np.asarray(probs[0])
    votes = np.zeros(first.shape, dtype=np.float64)
    rows = np.arange(first.shape[0])
    for p, wi in zip(probs, w, strict=True):
        votes[rows, np.asarray(p).argmax(1)] += wi
    return resolve_ties(votes, soft_vote(probs, w))


def resolve_ties(votes: np.ndarray, soft: np.ndarray) -> np.ndarray:
    top = votes.max(axis=1, keepdims=True)
    tied = votes >= top - TIE_TOLERANCE
    out = np.where(tied, top + TIE_SCALE * soft, votes)
    return out / out.sum(axis=1, keepdims=True)


def combine(probs: Sequence[np.ndarray], weights: Sequence[float] | None, vote: str = "soft") -> np.ndarray:
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {list(VOTES)} but got {vote!r}.")
    return soft_vote(probs, weights) if vote == "soft" else hard_vote(probs, weights)


def _normalised(n: int, weights: Sequence[float] | None) -> np.ndarray:
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    with np.errstate(over="ignore"):
        total = w.sum() if w.shape == (n,) else 0.0
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or total <= 0:
        raise ValueError(f"vote weights must be {n} finite values >= 0, not all 0, but got {weights!r}.")
    if not np.isfinite(total):  # each finite, their sum not: scale down before normalising
        w = w / w.max()
    return w / w.sum()
