"""The whole ensemble procedure on a candidate pool: the honest estimate and the final choice.

Both ``python -m search.ensemble`` (which reports) and ``python -m search.export`` (which
ships the final choice) run it, so the estimate printed is the estimate of what is exported.
Candidates of every input size and crop compete: an exported graph gives each member its own
preprocessing (search/deploy/graph.py).

Which procedure ships is decided by the held-out column, the one every row is scored on alike
(people that chose nothing about it): the row with the highest held-out macro-F1, the simpler
(earlier) row on a tie. The fold groups' vote, where there is one, ships unless another row is
ahead of it held out by more than ``FOLD_FOOTING``: its held-out score is that of single fold
models on (K-1)/K of the people, not of the K-model vote it ships, while the trial rows' are of
what ships, chosen among the trials the sampler picked on the same validation people. On real
faces (four runs) the fold group's held-out score was 0.02-0.13 below its eval score, and the
trial rows' from 0.04 above to 0.06 below theirs: the fold group's vote beat the held-out pick on
eval in 3 of the 4 (benchmarks/README.md, "Fold groups at every epoch the trial ran, and which row
ships"). The estimate is the shipped row's held-out score, or, for the fold groups' vote, its
out-of-fold macro-F1 over every person of the data (a fold group predicts each person with the
model that never saw them, and the vote chooses nothing) plus the gain of a K-model vote, which
the out-of-fold score of single models lacks: measured among the study's own K best trials on
the validation people, whom none of them trained on (``trials_vote_gain``; never below 0; of all
the trials when fewer than K exist, none with one). On real faces the fold vote's gain over its
single models was +0.031 to +0.055 on eval and the trials' +0.017 to +0.042; on four runs the
estimate's error went from -0.046..-0.102 to -0.069..+0.010 (benchmarks/README.md, "What the
fold group's estimate misses"). Only trials within ``GAIN_MARGIN`` of the best one vote: the K
fold models are one configuration, and a vote of one strong trial with weaker ones gains much
over their mean but nothing over the strong one (on a held-out bench, +0.069 of a 4-trial vote
whose best member stood 0.06 above the rest; benchmarks/README.md, "The vote gain among alike
trials").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runners.metrics import accuracy, macro_f1, macro_f1_people_sd
from search.ensembling.candidates import CandidatePool
from search.ensembling.honest import (
    FOLD_GROUPS,
    Choice,
    HonestReport,
    choice_probs,
    choose,
    format_table,
    has_fold_groups,
    honest_estimate,
    methods,
)
from search.ensembling.selection import Candidate, SelectionSettings
from search.ensembling.votes import VoteSpec, combine


FOLD_FOOTING = 0.10  # held-out macro-F1 another row must be ahead of the fold groups' vote to ship instead
# Validation macro-F1 below the best trial within which trials are as alike as one configuration's fold
# models: those scored 0.04-0.12 apart on their folds' people (real faces, 4-5 folds of 500 people).
GAIN_MARGIN = 0.04


@dataclass(frozen=True)
class VoteGain:
    """The macro-F1 a soft vote of ``members`` models adds over their mean, measured among the study's
    best trials on the validation people: what a fold group's out-of-fold score (single models) lacks."""

    members: int
    trials: tuple[str, ...]
    vote: float
    mean_single: float
    margin: float | None = None  # trials further below the best than this were left out

    @property
    def gain(self) -> float:
        return self.vote - self.mean_single

    @property
    def added(self) -> float:
        """What the estimate adds: the gain, never below 0 (a vote of one configuration's K fold models
        gained +0.03 to +0.06 over them in every group measured)."""
        return max(0.0, self.gain)

    def text(self) -> str:
        within = "" if self.margin is None else f" within {self.margin:.2f} of the best"
        if self.members < 2:
            return f"no vote gain (no other trial{within})"
        return f"{self.members}-model vote gain {self.added:+.4f} (among the {self.members} best trials{within})"

    def to_dict(self) -> dict[str, Any]:
        return {"members": self.members, "trials": list(self.trials), "vote": self.vote,
                "mean_single": self.mean_single, "gain": self.gain, "added": self.added, "margin": self.margin}


def vote_gain(
    probs: Mapping[str, np.ndarray], labels: np.ndarray, members: int, margin: float | None = None
) -> VoteGain:
    """The soft vote of the ``members`` best of these models (by macro-F1 on ``labels``) against
    their mean; ``probs``: each model's probabilities on the rows of ``labels``, by name. With
    ``margin``, only models within it of the best one vote (the best alone: no gain)."""
    singles = {name: macro_f1(labels, p) for name, p in probs.items()}
    best = sorted(singles, key=singles.__getitem__, reverse=True)[:members]
    if margin is not None:
        best = [name for name in best if singles[best[0]] - singles[name] <= margin]
    vote = macro_f1(labels, np.mean([probs[name] for name in best], axis=0))
    return VoteGain(len(best), tuple(best), vote, float(np.mean([singles[name] for name in best])), margin)


def trials_vote_gain(
    candidates: list[Candidate], labels: np.ndarray, members: int, margin: float | None = GAIN_MARGIN
) -> VoteGain | None:
    """``vote_gain`` of the ``members`` best study trials within ``margin`` of the best one, on the
    validation people; of all of them when there are fewer (a vote of fewer models gains less: a
    lower figure), None with fewer than two trials. Refits are left out: an all-people refit trained
    on these people, and a fold group is what is being estimated."""
    trials = {c.name: c.probs for c in candidates if not c.refit}
    if min(members, len(trials)) < 2:
        return None
    return vote_gain(trials, labels, members, margin)


@dataclass
class Outcome:
    study: str
    candidates: list[Candidate]
    honest: HonestReport  # chosen on one half of the validation people, scored on the other
    final: list[Choice]  # each method chosen on all validation people
    in_sample: dict[str, tuple[float, float]]  # final choices scored on all validation (optimistic)
    notes: list[str] = field(default_factory=list)
    eval_scores: dict[str, tuple[float, float]] | None = None  # bench eval labels, when known
    vote: VoteSpec = field(default_factory=VoteSpec)
    all_people: dict[str, tuple[float, float]] = field(default_factory=dict)  # out-of-fold, every person
    oof_images: int = 0  # image rows (of every person) the all_people scores are over
    all_people_sd: dict[str, float] = field(default_factory=dict)  # macro-F1's SD over draws of those people
    shipped: str = ""  # the method the held-out column chose (pick_method); "" before it is chosen
    why: str = ""
    vote_gain: VoteGain | None = None  # the K-model vote's gain added to the fold groups' out-of-fold score

    @property
    def methods(self) -> tuple[str, ...]:
        return methods(self.vote, has_fold_groups(self.candidates))

    def estimate(self, method: str) -> tuple[float, str]:
        """The honest macro-F1 of ``method`` and what it rests on."""
        if method in self.all_people:
            on = f"out-of-fold, all people ({self.oof_images} images)"
            if method == FOLD_GROUPS and self.vote_gain is not None:
                return self.all_people[method][0] + self.vote_gain.added, f"{on} + {self.vote_gain.text()}"
            return self.all_people[method][0], on
        return self.honest.score(method).macro_f1, f"held-out, {self.honest.mode}"

    def estimate_sd(self, method: str) -> float | None:
        """How far ``estimate(method)`` moves over bootstrap draws of the people it is scored on (for
        the fold groups' vote: of its out-of-fold part); None where the people were not kept."""
        if method in self.all_people:
            return self.all_people_sd.get(method)
        return self.honest.score(method).macro_f1_sd

    def estimate_text(self, method: str) -> str:
        """``estimate(method)`` as printed: "0.4600 ± 0.031 over people (held-out, cv)"."""
        value, on = self.estimate(method)
        sd = self.estimate_sd(method)
        spread = "" if sd is None else f" ± {sd:.3f} over people"
        return f"{value:.4f}{spread} ({on})"

    def choice(self, method: str | None = None) -> Choice:
        """The final choice of ``method`` (default: the ensemble with the chosen vote)."""
        method = method or self.vote.method
        for c in self.final:
            if c.method == method:
                return c
        raise KeyError(f"no method {method!r}; methods are {list(self.methods)}.")

    def sizes_text(self) -> str:
        """The candidates' input sizes and crops, e.g. "32x32 full (3), 48x48 face (1)"."""
        counts: dict[tuple[int, int, str], int] = {}
        for c in self.candidates:
            counts[c.preprocessing] = counts.get(c.preprocessing, 0) + 1
        return ", ".join(f"{h}x{w} {crop} ({n})" for (h, w, crop), n in sorted(counts.items()))

    def members_text(self, choice: Choice) -> str:
        return ", ".join(
            f"{self.candidates[m].name} ({w:.2f})"
            for m, w in zip(choice.members, choice.weights, strict=True)
        )

    def table(self) -> str:
        honest_title = f"held-out ({self.honest.mode})"
        columns = {
            honest_title: {s.method: (s.macro_f1, s.accuracy) for s in self.honest.scores},
        }
        if self.all_people:
            columns[f"out-of-fold, all people ({self.oof_images} images)"] = self.all_people
        columns["all validation (in-sample)"] = self.in_sample
        if self.eval_scores is not None:
            columns["bench eval labels"] = self.eval_scores
        return format_table(columns, {c.method: self.members_text(c) for c in self.final})

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "candidates": [c.name for c in self.candidates],
            "preprocessing": {
                c.name: {
                    "height": c.preprocessing[0],
                    "width": c.preprocessing[1],
                    "crop": c.preprocessing[2],
                }
                for c in self.candidates
            },
            "vote": self.vote.to_dict(),
            "honest": self.honest.to_dict(),
            "final": [
                {
                    "method": c.method,
                    "vote": c.vote,
                    "members": [self.candidates[m].name for m in c.members],
                    "trials": [[self.candidates[m].study, self.candidates[m].number] for m in c.members],
                    "weights": list(c.weights),
                    "validation_macro_f1": self.in_sample[c.method][0],
                    "validation_accuracy": self.in_sample[c.method][1],
                    "decision_rule": {"tau": c.tau, "old_band_offset": c.old_band_offset} if c.offsets else None,
                }
                for c in self.final
            ],
            "eval_labels": None
            if self.eval_scores is None
            else {m: {"macro_f1": v[0], "accuracy": v[1]} for m, v in self.eval_scores.items()},
            "notes": list(self.notes),
            "out_of_fold_all_people": {m: {"macro_f1": v[0], "accuracy": v[1]} for m, v in self.all_people.items()},
            "out_of_fold_images": self.oof_images,
            "out_of_fold_sd_over_people": dict(self.all_people_sd),
            "fold_vote_gain": None if self.vote_gain is None else self.vote_gain.to_dict(),
            "shipped": self.shipped,
            "why": self.why,
        }


def run_procedure(
    pool: CandidatePool,
    settings: SelectionSettings | None = None,
    mode: str = "cv",
    seed: int = 0,
    vote: VoteSpec | None = None,
) -> Outcome:
    settings = settings or SelectionSettings()
    vote = vote or VoteSpec()
    labels = np.asarray(pool.validation.labels, dtype=np.int64)
    candidates = list(pool.candidates)
    honest = honest_estimate(candidates, labels, pool.validation.people, settings, mode, seed, vote)
    final = choose(candidates, labels, settings, None, vote)
    in_sample = {}
    for c in final:
        probs = choice_probs(candidates, c)
        in_sample[c.method] = (macro_f1(labels, probs), accuracy(labels, probs))
    all_people, images, all_people_sd = out_of_fold_scores(candidates, final)
    gain = None
    if FOLD_GROUPS in all_people:
        k = max(c.fold_count for c in candidates if c.is_fold_group)
        gain = trials_vote_gain(candidates, labels, k)
    outcome = Outcome(
        pool.study, candidates, honest, final, in_sample, list(pool.notes), vote=vote, all_people=all_people,
        oof_images=images, vote_gain=gain, all_people_sd=all_people_sd,
    )
    outcome.shipped, outcome.why = pick_method(outcome)
    return outcome


def out_of_fold_scores(
    candidates: list[Candidate], final: list[Choice]
) -> tuple[dict[str, tuple[float, float]], int, dict[str, float]]:
    """({method: (macro-F1, accuracy)}, images, {method: macro-F1's SD over people}) over every image
    row, for the choices made of fold groups only whose out-of-fold predictions cover every row
    (today: the fold groups' vote); the SD where the groups kept the rows' people."""
    scores: dict[str, tuple[float, float]] = {}
    sds: dict[str, float] = {}
    rows = 0
    for choice in final:
        members = [candidates[m] for m in choice.members]
        if choice.method != FOLD_GROUPS or not all(c.all_people is not None for c in members):
            continue
        parts = [c.all_people for c in members if c.all_people is not None]
        labels = parts[0][1]
        if any(p[0].shape != parts[0][0].shape or not np.array_equal(p[1], labels) for p in parts):
            continue  # fold groups of other data: no common rows to vote on
        probs = combine([p[0] for p in parts], choice.weights, choice.vote)
        scores[choice.method] = (macro_f1(labels, probs), accuracy(labels, probs))
        rows = len(labels)
        people = members[0].all_people_ids
        if people is not None and len(people) == rows:
            sds[choice.method] = macro_f1_people_sd(labels, probs, people)
    return scores, rows, sds


def pick_method(outcome: Outcome) -> tuple[str, str]:
    """The method to ship and why (module docstring): the fold groups' vote unless another row is
    more than ``FOLD_FOOTING`` ahead of it held out, else the highest held-out macro-F1, the
    earlier, simpler row on a tie."""
    scores = [(outcome.honest.score(m).macro_f1, m) for m in outcome.methods]
    leader = max(scores, key=lambda sm: sm[0])  # the first of the best: the simplest on a tie
    if FOLD_GROUPS in outcome.methods:
        fold = outcome.honest.score(FOLD_GROUPS).macro_f1
        if leader[0] - fold <= FOLD_FOOTING:
            ahead = "" if leader[1] == FOLD_GROUPS else f"; {leader[1]} {leader[0]:.4f}"
            return FOLD_GROUPS, (
                f"fold groups' vote: held-out {fold:.4f}, within {FOLD_FOOTING:.2f} of every row{ahead} "
                "(a fold group's held-out score is of its single fold models, not of its vote)"
            )
    others = sorted((sm for sm in scores if sm[1] != leader[1]), key=lambda sm: -sm[0])
    why = f"highest held-out macro-F1, {leader[0]:.4f}"
    if others:
        why += f" (next: {others[0][1]}, {others[0][0]:.4f})"
    if FOLD_GROUPS in outcome.methods:
        why += f"; more than {FOLD_FOOTING:.2f} ahead of the fold groups' vote"
    return leader[1], why
