"""Greedy forward ensemble selection with replacement (Caruana et al. 2004), with diversity.

Numpy and scikit-learn only: it works on the validation probabilities every trial saved.

Each round adds one candidate (a new one or one already in) to a running vote (soft, or hard
when the ensemble ships a hard vote), the one whose addition gives the best validation macro-F1 (plus an optional disagreement bonus for a
new member). Weights are pick counts over the total. Diversity is built in: at most
``max_per_backbone`` distinct members share a backbone (unless the pool has a single backbone), at most ``max_per_age_cutoff`` share a
training age cutoff, and at most ``max_members`` distinct members in all (each is one network
at predict time). The returned ensemble is the best prefix of the picks, so its score on the
selection rows is never below the best single candidate's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runners.classes import NUM_CLASSES
from runners.metrics import macro_f1
from search.deploy.votes import VOTES
from search.ensembling.votes import soft_vote

log = logging.getLogger(__name__)



@dataclass(frozen=True, eq=False)
class Candidate:
    """One completed trial that may enter an ensemble."""

    study: str
    number: int  # trial number in its study
    probs: np.ndarray  # (N_val, 18) softmax on the study's validation rows
    config: dict[str, Any]  # the TrialConfig dict
    value: float | None = None  # the study's recorded value (best validation macro-F1)
    weights: Path | None = None  # the trial's weights.safetensors, when kept on disk
    refit: str = ""  # search.refit: "" the trial as run, "all" refitted on all people, "folds-K" its fold group
    checkpoints: tuple[Path, ...] = ()  # a fold group's K weight files, averaged at predict time
    # A fold group's out-of-fold (probabilities, labels) over every image row of the data: its estimate
    # over every person, not only the validation people (search.ensembling.procedure)
    all_people: tuple[np.ndarray, np.ndarray] | None = None
    all_people_ids: np.ndarray | None = None  # the person of each of those rows (None: saved before they were kept)

    @property
    def is_fold_group(self) -> bool:
        return self.refit.startswith("folds-")

    @property
    def fold_count(self) -> int:
        """K of a fold group (``folds-K``); 0 for anything else."""
        return int(self.refit.removeprefix("folds-")) if self.is_fold_group else 0

    @property
    def name(self) -> str:
        return f"{self.study}#{self.number}" + (f"/{self.refit}" if self.refit else "")

    def weight_files(self) -> tuple[Path, ...]:
        """The networks this member averages: its K fold models, or its one checkpoint."""
        return self.checkpoints or ((self.weights,) if self.weights is not None else ())

    @property
    def backbone(self) -> str:
        return str(self.config.get("backbone", "?"))

    @property
    def age_cutoff(self) -> int | None:
        cutoff = self.config.get("age_cutoff")
        return None if cutoff is None else int(cutoff)

    @property
    def preprocessing(self) -> tuple[int, int, str]:
        """(height, width, crop) of the images the trial was trained and validated on."""
        return int(self.config["height"]), int(self.config["width"]), str(self.config["crop"])


@dataclass(frozen=True)
class SelectionSettings:
    max_members: int = 5  # distinct trials in the ensemble (each is one network at predict time)
    max_picks: int = 20  # rounds of greedy selection with replacement; weight = picks / total picks
    max_per_backbone: int | None = 2  # distinct members sharing a backbone; None = no cap
    max_per_age_cutoff: int | None = None  # distinct members sharing a training age cutoff; None = no cap
    disagreement: float = 0.0  # bonus x (share of rows where a new member's class differs from the vote)

    def __post_init__(self) -> None:
        for name in ("max_members", "max_picks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1 but got {value!r}.")
        for name in ("max_per_backbone", "max_per_age_cutoff"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None (no cap) or an integer >= 1 but got {value!r}.")
        if not np.isfinite(self.disagreement) or self.disagreement < 0:
            raise ValueError(f"disagreement must be a finite number >= 0 but got {self.disagreement!r}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_members": self.max_members,
            "max_picks": self.max_picks,
            "max_per_backbone": self.max_per_backbone,
            "max_per_age_cutoff": self.max_per_age_cutoff,
            "disagreement": self.disagreement,
        }


@dataclass(frozen=True)
class Selection:
    members: tuple[int, ...]  # candidate indices, in order of first pick
    weights: tuple[float, ...]  # soft-vote weight of each member, summing to 1
    score: float  # macro-F1 of the weighted soft vote on the selection rows
    picks: tuple[int, ...] = field(default=())  # every pick made (the returned prefix and beyond)
    history: tuple[float, ...] = field(default=())  # macro-F1 after each pick


def rank_singles(
    candidates: Sequence[Candidate], labels: np.ndarray, rows: np.ndarray | None = None
) -> list[int]:
    """Candidate indices by macro-F1 on ``rows`` (best first; ties keep the given order)."""
    labels_r = labels if rows is None else labels[rows]
    scores = [macro_f1(labels_r, _rows(c.probs, rows)) for c in candidates]
    return sorted(range(len(candidates)), key=lambda i: -scores[i])


def top_k(
    candidates: Sequence[Candidate], labels: np.ndarray, k: int, rows: np.ndarray | None = None
) -> list[int]:
    """The k best single candidates on ``rows`` (fewer when there are fewer candidates)."""
    if k < 1:
        raise ValueError(f"k must be at least 1 but got {k}.")
    return rank_singles(candidates, labels, rows)[:k]


def select(
    candidates: Sequence[Candidate],
    labels: np.ndarray,
    settings: SelectionSettings | None = None,
    rows: np.ndarray | None = None,
    vote: str = "soft",
) -> Selection:
    """Greedy forward selection with replacement on ``labels[rows]`` (all rows when None).

    Each pick is scored with the vote that will ship: the soft vote of the picks, or (``vote``
    "hard") their hard vote, so the pick counts are weights learned for that vote.
    """
    settings = settings or SelectionSettings()
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {VOTES.names()} but got {vote!r}.")
    shipped = VOTES.get(vote)
    if not candidates:
        raise ValueError("ensemble selection needs at least one candidate trial but got none.")
    labels = np.asarray(labels, dtype=np.int64)
    for c in candidates:
        if c.probs.shape != (len(labels), NUM_CLASSES):
            raise ValueError(
                f"trial {c.name} has validation probabilities of shape {c.probs.shape}, expected "
                f"({len(labels)}, {NUM_CLASSES}): its val_probs do not belong to this validation set."
            )
    y = labels if rows is None else labels[rows]
    if y.size == 0:
        raise ValueError("ensemble selection needs at least one validation row but got none.")
    if len({c.backbone for c in candidates}) == 1 and settings.max_per_backbone is not None:
        # One backbone in the pool (a CPU study): the cap would only shrink the ensemble, not diversify it.
        settings = dataclasses.replace(settings, max_per_backbone=None)
    # Rank first so ties between candidates go to the better single, deterministically.
    order = rank_singles(candidates, labels, rows)
    probs = [_rows(candidates[i].probs, rows).astype(np.float64) for i in order]
    single_preds = [p.argmax(1) for p in probs]
    parts = [shipped.parts(p) for p in probs]  # what each candidate adds to the vote per pick
    counts = np.zeros(len(order), dtype=np.int64)
    total = np.zeros_like(probs[0])  # the soft vote so far (the disagreement bonus compares with it)
    sums = tuple(np.zeros_like(part) for part in parts[0])  # the vote's pick-weighted part sums
    picks: list[int] = []
    history: list[float] = []
    best_score, best_len = -1.0, 0
    for _ in range(settings.max_picks):
        allowed = _allowed(candidates, order, counts, settings)
        current = total.argmax(1) if counts.any() else None  # the classes the soft vote so far gives
        best_j, best_obj, best_f1 = -1, -np.inf, -1.0
        for j in allowed:
            f1 = macro_f1(y, shipped.decide(tuple(s + part for s, part in zip(sums, parts[j], strict=True))))
            bonus = 0.0
            if current is not None and counts[j] == 0 and settings.disagreement > 0:
                bonus = settings.disagreement * float(np.mean(single_preds[j] != current))
            if f1 + bonus > best_obj + 1e-12:
                best_j, best_obj, best_f1 = j, f1 + bonus, f1
        counts[best_j] += 1
        total += probs[best_j]
        sums = tuple(s + part for s, part in zip(sums, parts[best_j], strict=True))
        picks.append(order[best_j])
        history.append(best_f1)
        if best_f1 > best_score + 1e-12:  # strictly better: prefer the shorter prefix on ties
            best_score, best_len = best_f1, len(picks)
    chosen = Counter(picks[:best_len])
    members = tuple(dict.fromkeys(picks[:best_len]))
    weights = tuple(chosen[m] / best_len for m in members)
    log.info(
        "selected %d member(s) with %d pick(s): macro-F1 %.4f on %d rows (%s)",
        len(members),
        best_len,
        best_score,
        y.size,
        ", ".join(f"{candidates[m].name} x{chosen[m]}" for m in members),
    )
    return Selection(members, weights, best_score, tuple(picks), tuple(history))


def ensemble_probs(
    candidates: Sequence[Candidate], members: Sequence[int], weights: Sequence[float]
) -> np.ndarray:
    """The soft vote of ``members`` with ``weights`` over all validation rows."""
    return soft_vote([candidates[m].probs for m in members], weights)


def _allowed(
    candidates: Sequence[Candidate], order: list[int], counts: np.ndarray, settings: SelectionSettings
) -> list[int]:
    """Positions (in ``order``) that may be picked next: a member again, or a new one within the caps."""
    inside = [candidates[order[j]] for j in range(len(order)) if counts[j] > 0]
    per_backbone = Counter(c.backbone for c in inside)
    per_cutoff = Counter(c.age_cutoff for c in inside)
    allowed = []
    for j, i in enumerate(order):
        if counts[j] > 0:
            allowed.append(j)
            continue
        c = candidates[i]
        if len(inside) >= settings.max_members:
            continue
        if settings.max_per_backbone is not None and per_backbone[c.backbone] >= settings.max_per_backbone:
            continue
        if (
            settings.max_per_age_cutoff is not None
            and per_cutoff[c.age_cutoff] >= settings.max_per_age_cutoff
        ):
            continue
        allowed.append(j)
    return allowed


def _rows(probs: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
    return probs if rows is None else probs[rows]
