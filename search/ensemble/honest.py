"""An honest estimate of the ensemble procedure: choose on some validation people, score on others.

Validation people are split in two halves stratified by person class (gender x age band),
seeded and independent of row order. In ``split`` mode members are chosen on one half and
scored on the other; in ``cv`` mode that is done both ways and the two scores are averaged.
Beside the selected ensemble the report shows, on the same held-out people, the best single
trial and the plain top-3 and top-5 soft votes (each chosen on the selection half too), and the
selected ensemble with the macro-F1 decision rule (``search.ensemble.decision``), whose offsets
are fitted on the selection half as well: never on the people it is scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from search.ensemble.decision import apply_offsets, fit_offsets
from search.ensemble.selection import (
    Candidate,
    SelectionSettings,
    accuracy,
    macro_f1,
    select,
    soft_vote,
    top_k,
)

MODES = ("split", "cv")
METHODS = ("best single", "top-3 soft vote", "top-5 soft vote", "selected ensemble", "selected + decision rule")
SELECTED, DECISION_RULE = METHODS[3], METHODS[4]


@dataclass(frozen=True)
class Choice:
    """One method's chosen members and weights (candidate indices)."""

    method: str
    members: tuple[int, ...]
    weights: tuple[float, ...]
    offsets: tuple[float, ...] = ()  # per-class decision offsets on the vote's log-probabilities; () = argmax


@dataclass
class MethodScore:
    method: str
    macro_f1: float
    accuracy: float
    members: list[list[str]] = field(default_factory=list)  # per fold: member names
    weights: list[list[float]] = field(default_factory=list)  # per fold: their weights


@dataclass
class HonestReport:
    mode: str
    seed: int
    settings: dict[str, Any]
    folds: list[dict[str, int]]  # per fold: people and rows on each side
    scores: list[MethodScore]  # held-out macro-F1 and accuracy (mean over folds in cv mode)

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
) -> list[Choice]:
    """The four methods' choices made on ``rows`` (all rows when None)."""
    best = top_k(candidates, labels, 1, rows)
    choices = [Choice(METHODS[0], tuple(best), (1.0,))]
    for k, method in ((3, METHODS[1]), (5, METHODS[2])):
        members = top_k(candidates, labels, k, rows)
        choices.append(Choice(method, tuple(members), tuple([1.0 / len(members)] * len(members))))
    selection = select(candidates, labels, settings, rows)
    choices.append(Choice(SELECTED, selection.members, selection.weights))
    vote = choice_probs(candidates, choices[-1])
    fit_rows = np.arange(len(labels)) if rows is None else rows
    offsets = fit_offsets(vote[fit_rows], labels[fit_rows])
    choices.append(Choice(DECISION_RULE, selection.members, selection.weights, tuple(float(o) for o in offsets)))
    return choices


def choice_probs(candidates: Sequence[Candidate], choice: Choice) -> np.ndarray:
    vote = soft_vote([candidates[m].probs for m in choice.members], choice.weights)
    return apply_offsets(vote, np.asarray(choice.offsets)) if choice.offsets else vote


def honest_estimate(
    candidates: Sequence[Candidate],
    labels: np.ndarray,
    people: np.ndarray,
    settings: SelectionSettings | None = None,
    mode: str = "cv",
    seed: int = 0,
) -> HonestReport:
    """Choose on one half of the validation people, score on the other (both ways in ``cv``)."""
    settings = settings or SelectionSettings()
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)} but got {mode!r}.")
    labels = np.asarray(labels, dtype=np.int64)
    folds = person_halves(people, labels, seed)
    if mode == "split":
        folds = folds[:1]
    people = np.asarray(people).astype(str)
    per_method: dict[str, MethodScore] = {m: MethodScore(m, 0.0, 0.0) for m in METHODS}
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
        for choice in choose(candidates, labels, settings, sel_rows):
            probs = choice_probs(candidates, choice)[score_rows]
            entry = per_method[choice.method]
            entry.macro_f1 += macro_f1(labels[score_rows], probs) / len(folds)
            entry.accuracy += accuracy(labels[score_rows], probs) / len(folds)
            entry.members.append([candidates[m].name for m in choice.members])
            entry.weights.append([round(w, 6) for w in choice.weights])
    return HonestReport(mode, seed, settings.to_dict(), fold_info, [per_method[m] for m in METHODS])


def format_table(
    columns: dict[str, dict[str, tuple[float, float]]], members: dict[str, str] | None = None
) -> str:
    """A text table: one row per method, one (macro-F1, accuracy) column pair per score set.

    ``columns`` maps a column title to {method: (macro_f1, accuracy)}; a method missing from
    a column prints as "-".
    """
    titles = list(columns)
    width = max(len(m) for m in METHODS) + 2
    widths = [max(26, len(t) + 3) for t in titles]
    head = "method".ljust(width) + "".join(f"{t:>{w}}" for t, w in zip(titles, widths, strict=True))
    sub = "".ljust(width) + "".join(f"{'macro-F1':>{w - 11}}{'accuracy':>11}" for w in widths)
    lines = [head, sub, "-" * len(sub)]
    for method in METHODS:
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
