"""An honest estimate of the ensemble procedure: choose on some validation people, score on others.

Validation people are split in two halves stratified by person class (gender x age band),
seeded and independent of row order. In ``split`` mode members are chosen on one half and
scored on the other; in ``cv`` mode that is done both ways and the two scores are averaged.
Beside the selected ensemble the report shows, on the same held-out people, the best single
trial and the plain top-3 and top-5 soft votes (each chosen on the selection half too), and the
selected ensemble with the macro-F1 decision rule (``search.ensembling.decision``), whose offsets
are fitted on the selection half as well: never on the people it is scored on. When the pool
holds fold groups (search.refit), the equal-weight vote of all of them is one more row.

The ensemble row is the vote that ships (``search.ensembling.votes.VoteSpec``): a vote of the
registry search.deploy.votes (soft, hard, geometric, ...) of the members the greedy selection
chose on the selection half with the weights it learned there, or of the members and weights
the user gave (nothing is chosen then; the score is still on the held-out people only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from runners.metrics import accuracy, macro_f1, macro_f1_people_sd
from search.ensembling.decision import apply_offsets, fit_rule
from search.ensembling.selection import (
    Candidate,
    SelectionSettings,
    select,
    top_k,
)
from search.ensembling.votes import VoteSpec, combine

MODES = ("split", "cv")
BASELINES = ("best single", "top-3 soft vote", "top-5 soft vote")
METHODS = (*BASELINES, VoteSpec().method, str(VoteSpec().rule_method))  # the default: learned soft vote
SELECTED, DECISION_RULE = METHODS[3], METHODS[4]
FOLD_GROUPS = "fold group vote"  # every fold group (search.refit), equal weights: nothing chosen on people


def methods(vote: VoteSpec | None = None, fold_groups: bool = False) -> tuple[str, ...]:
    """The rows of the comparison for ``vote``: the baselines, the ensemble, its decision rule, and
    the fold groups' vote when there are fold groups."""
    vote = vote or VoteSpec()
    rows = (*BASELINES, vote.method) + (() if vote.rule_method is None else (vote.rule_method,))
    return rows + ((FOLD_GROUPS,) if fold_groups else ())


def has_fold_groups(candidates: Sequence[Candidate]) -> bool:
    return any(c.is_fold_group for c in candidates)


@dataclass(frozen=True)
class Choice:
    """One method's chosen members and weights (candidate indices)."""

    method: str
    members: tuple[int, ...]
    weights: tuple[float, ...]
    offsets: tuple[float, ...] = ()  # per-class decision offsets on the vote's log-probabilities; () = argmax
    vote: str = "soft"  # search.ensembling.votes.VOTES
    tau: float = 0.0  # the decision rule's parts (search.ensembling.decision.DecisionRule), when it has offsets
    old_band_offset: float = 0.0


@dataclass
class MethodScore:
    method: str
    macro_f1: float
    accuracy: float
    members: list[list[str]] = field(default_factory=list)  # per fold: member names
    weights: list[list[float]] = field(default_factory=list)  # per fold: their weights
    # SD of macro_f1 over bootstrap draws of the people it is scored on (cv: of the two halves'
    # mean, the halves' people being disjoint): how much of a miss the people alone explain
    macro_f1_sd: float = 0.0


@dataclass
class HonestReport:
    mode: str
    seed: int
    settings: dict[str, Any]
    folds: list[dict[str, int]]  # per fold: people and rows on each side
    scores: list[MethodScore]  # held-out macro-F1 and accuracy (mean over folds in cv mode)
    vote: dict[str, Any] = field(default_factory=lambda: VoteSpec().to_dict())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def score(self, method: str) -> MethodScore:
        for s in self.scores:
            if s.method == method:
                return s
        raise KeyError(f"no method {method!r} in the report; methods are {[s.method for s in self.scores]}.")


def person_halves(
    people: np.ndarray, labels: np.ndarray, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two (select_rows, score_rows) folds of row indices; each person lies in one half only.

    Stratified by the person's class (canonical label % 6 = gender*3 + age band), seeded, and
    the same whatever order the rows come in.
    """
    people = np.asarray(people).astype(str)
    labels = np.asarray(labels, dtype=np.int64)
    if people.shape != labels.shape:
        raise ValueError(
            f"people and labels must have the same length but got {people.shape} and {labels.shape}."
        )
    names, inverse = np.unique(people, return_inverse=True)  # sorted: independent of row order
    if len(names) < 2:
        raise ValueError(
            f"an honest estimate needs at least 2 validation people but the validation set has {len(names)}."
        )
    person_class = np.zeros(len(names), dtype=np.int64)
    for k in range(len(names)):
        person_class[k] = np.bincount(labels[inverse == k] % 6).argmax()
    # Classes with a single person cannot be stratified; merge them into one stratum.
    counts = np.bincount(person_class, minlength=6)
    strata = np.where(counts[person_class] >= 2, person_class, -1)
    if np.sum(strata == -1) == 1:  # a lone leftover joins the largest stratum
        strata[strata == -1] = np.bincount(person_class).argmax()
    if len(np.unique(strata)) == 1:
        strata = np.zeros(len(names), dtype=np.int64)
    kfold = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed)
    folds = []
    for sel_people, score_people in kfold.split(np.zeros(len(names)), strata):
        sel = np.flatnonzero(np.isin(inverse, sel_people))
        score = np.flatnonzero(np.isin(inverse, score_people))
        folds.append((sel, score))
    return folds


def choose(
    candidates: Sequence[Candidate],
    labels: np.ndarray,
    settings: SelectionSettings,
    rows: np.ndarray | None = None,
    vote: VoteSpec | None = None,
) -> list[Choice]:
    """Each method's choice made on ``rows`` (all rows when None), in ``methods(vote)`` order."""
    vote = vote or VoteSpec()
    best = top_k(candidates, labels, 1, rows)
    choices = [Choice(BASELINES[0], tuple(best), (1.0,))]
    for k, method in ((3, BASELINES[1]), (5, BASELINES[2])):
        members = top_k(candidates, labels, k, rows)
        choices.append(Choice(method, tuple(members), tuple([1.0 / len(members)] * len(members))))
    if vote.given is None:
        selection = select(candidates, labels, settings, rows, vote.vote)
        members, weights = selection.members, selection.weights
    else:
        members, weights = given_members(candidates, vote)
    choices.append(Choice(vote.method, members, weights, vote=vote.vote))
    if vote.rule_method is not None:
        fit_rows = np.arange(len(labels)) if rows is None else rows
        rule = fit_rule(choice_probs(candidates, choices[-1])[fit_rows], labels[fit_rows], vote.old_band)
        choices.append(Choice(vote.rule_method, members, weights, tuple(float(o) for o in rule.offsets),
                              tau=rule.tau, old_band_offset=rule.old_band_offset))
    groups = tuple(i for i, c in enumerate(candidates) if c.is_fold_group)
    if groups:
        choices.append(Choice(FOLD_GROUPS, groups, tuple([1.0 / len(groups)] * len(groups))))
    return choices


def given_members(candidates: Sequence[Candidate], vote: VoteSpec) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Candidate indices and normalised weights of the members ``vote`` names."""
    index = {c.name: i for i, c in enumerate(candidates)}
    missing = [name for name, _ in vote.given or () if name not in index]
    if missing:
        raise ValueError(
            f"--weights names {missing}, which are not candidates (completed trials with a checkpoint "
            f"on disk); candidates are {sorted(index)}."
        )
    pairs = [(index[name], w) for name, w in vote.given or () if w > 0]
    total = sum(w for _, w in pairs)
    return tuple(i for i, _ in pairs), tuple(w / total for _, w in pairs)


def choice_probs(candidates: Sequence[Candidate], choice: Choice) -> np.ndarray:
    probs = combine([candidates[m].probs for m in choice.members], choice.weights, choice.vote)
    return apply_offsets(probs, np.asarray(choice.offsets)) if choice.offsets else probs


def honest_estimate(
    candidates: Sequence[Candidate],
    labels: np.ndarray,
    people: np.ndarray,
    settings: SelectionSettings | None = None,
    mode: str = "cv",
    seed: int = 0,
    vote: VoteSpec | None = None,
) -> HonestReport:
    """Choose on one half of the validation people, score on the other (both ways in ``cv``)."""
    settings = settings or SelectionSettings()
    vote = vote or VoteSpec()
    names = methods(vote, has_fold_groups(candidates))
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)} but got {mode!r}.")
    labels = np.asarray(labels, dtype=np.int64)
    folds = person_halves(people, labels, seed)
    if mode == "split":
        folds = folds[:1]
    people = np.asarray(people).astype(str)
    per_method: dict[str, MethodScore] = {m: MethodScore(m, 0.0, 0.0) for m in names}
    variance = dict.fromkeys(names, 0.0)
    fold_info = []
    for sel_rows, score_rows in folds:
        fold_info.append(
            {
                "select_people": len(np.unique(people[sel_rows])),
                "select_rows": len(sel_rows),
                "score_people": len(np.unique(people[score_rows])),
                "score_rows": len(score_rows),
            }
        )
        for choice in choose(candidates, labels, settings, sel_rows, vote):
            probs = choice_probs(candidates, choice)[score_rows]
            entry = per_method[choice.method]
            entry.macro_f1 += macro_f1(labels[score_rows], probs) / len(folds)
            entry.accuracy += accuracy(labels[score_rows], probs) / len(folds)
            sd = macro_f1_people_sd(labels[score_rows], probs, people[score_rows], seed=seed)
            variance[choice.method] += (sd / len(folds)) ** 2
            entry.members.append([candidates[m].name for m in choice.members])
            entry.weights.append([round(w, 6) for w in choice.weights])
    for m in names:
        per_method[m].macro_f1_sd = float(np.sqrt(variance[m]))
    scores = [per_method[m] for m in names]
    return HonestReport(mode, seed, settings.to_dict(), fold_info, scores, vote.to_dict())


def format_table(
    columns: dict[str, dict[str, tuple[float, float]]], members: dict[str, str] | None = None
) -> str:
    """A text table: one row per method, one (macro-F1, accuracy) column pair per score set.

    ``columns`` maps a column title to {method: (macro_f1, accuracy)}; a method missing from
    a column prints as "-". Rows follow the order of first appearance across the columns.
    """
    titles = list(columns)
    rows = list(dict.fromkeys(m for column in columns.values() for m in column)) or list(METHODS)
    width = max(len(m) for m in (*rows, *METHODS)) + 2
    widths = [max(26, len(t) + 3) for t in titles]
    head = "method".ljust(width) + "".join(f"{t:>{w}}" for t, w in zip(titles, widths, strict=True))
    sub = "".ljust(width) + "".join(f"{'macro-F1':>{w - 11}}{'accuracy':>11}" for w in widths)
    lines = [head, sub, "-" * len(sub)]
    for method in rows:
        cells = []
        for t, w in zip(titles, widths, strict=True):
            value = columns[t].get(method)
            cells.append(
                f"{'-':>{w - 11}}{'-':>11}" if value is None else f"{value[0]:>{w - 11}.4f}{value[1]:>11.4f}"
            )
        line = method.ljust(width) + "".join(cells)
        if members and method in members:
            line += "   " + members[method]
        lines.append(line)
    return "\n".join(lines)
