"""The vote an ensemble ships, with learned or given weights.

The votes themselves (soft, hard, geometric, ...) are the registry search.deploy.votes.VOTES,
written once for numpy and torch, so that the exported graph computes the very same formula.

Weights are learned (the greedy selection's pick counts on the selection half, each pick
scored with the vote that ships, see search/ensembling/selection.py) unless the user gives them
(``--weights``), naming the members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from search.deploy.votes import VOTES, combine

MAX_WEIGHT = 1e6  # a member's vote weight; the bundle manifest refuses more (search.deploy.manifest.MAX_WEIGHT)


@dataclass(frozen=True)
class VoteSpec:
    """The vote an ensemble ships: ``vote`` and, when given, the members and their weights."""

    vote: str = "soft"
    given: tuple[tuple[str, float], ...] | None = None  # (candidate name "study#N", weight); None = learned
    # the decision rule also fits an old-band offset (search.ensembling.decision); only for a vote
    # of the registry that takes the rule (VOTES[vote].takes_decision_rule), else unused
    old_band: bool = True

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
        label = VOTES.get(self.vote).label
        return f"{base}, {label}" if label else base

    @property
    def rule_method(self) -> str | None:
        """The name of its decision-rule row; None for a vote the rule does not apply to."""
        if not VOTES.get(self.vote).takes_decision_rule:
            return None
        return "selected + decision rule" if self.given is None else "given weights + decision rule"

    def to_dict(self) -> dict[str, object]:
        if self.rule_method is None:
            old_band = f"none: a {self.vote} vote takes no decision rule"
        else:
            old_band = "fitted with the decision rule" if self.old_band else "off"
        return {
            "vote": self.vote,
            "weights": "learned on the selection people" if self.given is None else dict(self.given),
            "old_band_offset": old_band,
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
    return combine(probs, weights, "soft")


def hard_vote(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted majority of the members' argmax classes, ties broken by the soft vote."""
    return combine(probs, weights, "hard")
