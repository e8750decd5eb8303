"""The honest estimate: person halves and the side-by-side report."""

from __future__ import annotations

import numpy as np
import pytest

from search.ensembling.honest import METHODS, choice_probs, choose, format_table, honest_estimate, person_halves
from runners.metrics import macro_f1, macro_f1_people_sd
from search.ensembling.selection import Candidate, SelectionSettings


def people_table(n_people: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """7 rows per person; a person's label % 6 (gender x age) is constant, mask varies."""
    rng = np.random.default_rng(seed)
    person_class = rng.integers(0, 6, n_people)
    people = np.repeat([f"p{i:03d}" for i in range(n_people)], 7)
    masks = np.tile([0, 0, 0, 0, 0, 1, 2], n_people)
    labels = masks * 6 + np.repeat(person_class, 7)
    return people, labels


def test_no_person_on_both_sides_and_every_row_used() -> None:
    people, labels = people_table()
    folds = person_halves(people, labels, seed=0)
    assert len(folds) == 2
    for sel, score in folds:
        assert not set(people[sel]) & set(people[score])
        assert sorted(np.concatenate([sel, score]).tolist()) == list(range(len(people)))
    assert np.array_equal(folds[0][0], folds[1][1])  # the second fold is the first swapped


def test_seeded_and_independent_of_row_order() -> None:
    people, labels = people_table()
    a = person_halves(people, labels, seed=3)
    b = person_halves(people, labels, seed=3)
    c = person_halves(people, labels, seed=4)
    assert np.array_equal(a[0][0], b[0][0])
    assert set(people[a[0][0]]) != set(people[c[0][0]])
    perm = np.random.default_rng(9).permutation(len(people))
    shuffled = person_halves(people[perm], labels[perm], seed=3)
    assert set(people[perm][shuffled[0][0]]) == set(people[a[0][0]])


def test_halves_are_stratified_by_person_class() -> None:
    people, labels = people_table(n_people=120)
    sel, score = person_halves(people, labels, seed=0)[0]
    for cls in range(6):
        n_sel = len(set(people[sel][labels[sel] % 6 == cls]))
        n_score = len(set(people[score][labels[score] % 6 == cls]))
        assert abs(n_sel - n_score) <= 1


def test_one_person_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 validation people"):
        person_halves(np.array(["p"] * 7), np.zeros(7, dtype=int))


def noisy_candidates(labels: np.ndarray, n: int = 6, seed: int = 0) -> list[Candidate]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = rng.dirichlet(np.ones(18), len(labels))
        p[np.arange(len(labels)), labels] += rng.uniform(0, 0.15 + 0.02 * i, len(labels))
        config = {"backbone": f"b{i % 3}", "age_cutoff": 60, "height": 32, "width": 32, "crop": "full"}
        out.append(Candidate("s", i, p / p.sum(1, keepdims=True), config))
    return out


def test_split_mode_scores_on_the_other_half_what_was_chosen_on_one() -> None:
    people, labels = people_table()
    cands = noisy_candidates(labels)
    settings = SelectionSettings(max_members=3)
    report = honest_estimate(cands, labels, people, settings, mode="split", seed=1)
    assert [s.method for s in report.scores] == list(METHODS)
    assert len(report.folds) == 1
    sel, score = person_halves(people, labels, seed=1)[0]
    for choice in choose(cands, labels, settings, sel):
        expected = macro_f1(labels[score], choice_probs(cands, choice)[score])
        assert report.score(choice.method).macro_f1 == pytest.approx(expected)
        assert report.score(choice.method).members == [[cands[m].name for m in choice.members]]
    assert len(report.score("top-3 soft vote").members[0]) == 3
    assert report.folds[0]["select_people"] + report.folds[0]["score_people"] == 60


def test_cv_mode_averages_both_halves() -> None:
    people, labels = people_table()
    cands = noisy_candidates(labels)
    settings = SelectionSettings(max_members=3)
    report = honest_estimate(cands, labels, people, settings, mode="cv", seed=1)
    assert len(report.folds) == 2
    folds = person_halves(people, labels, seed=1)
    best = []
    for sel, score in folds:
        choice = choose(cands, labels, settings, sel)[0]
        best.append(macro_f1(labels[score], choice_probs(cands, choice)[score]))
    assert report.score("best single").macro_f1 == pytest.approx(np.mean(best))
    assert report.to_dict()["mode"] == "cv"


def test_each_held_out_score_carries_its_spread_over_the_people_it_is_scored_on() -> None:
    people, labels = people_table()
    cands = noisy_candidates(labels)
    settings = SelectionSettings(max_members=3)
    folds = person_halves(people, labels, seed=1)
    split = honest_estimate(cands, labels, people, settings, mode="split", seed=1)
    sel, score = folds[0]
    for choice in choose(cands, labels, settings, sel):
        probs = choice_probs(cands, choice)[score]
        expected = macro_f1_people_sd(labels[score], probs, people[score], seed=1)
        assert split.score(choice.method).macro_f1_sd == pytest.approx(expected) and expected > 0
    cv = honest_estimate(cands, labels, people, settings, mode="cv", seed=1)
    halves = [
        macro_f1_people_sd(labels[score], choice_probs(cands, choose(cands, labels, settings, sel)[0])[score],
                           people[score], seed=1)
        for sel, score in folds
    ]  # the mean of two halves of disjoint people: its variance is the halves' over four
    assert cv.score("best single").macro_f1_sd == pytest.approx(np.hypot(*halves) / 2)


def test_unknown_mode_is_an_error() -> None:
    people, labels = people_table()
    with pytest.raises(ValueError, match="mode"):
        honest_estimate(noisy_candidates(labels), labels, people, mode="loo")


def test_table_prints_every_method_and_column() -> None:
    text = format_table({"held-out": {m: (0.5, 0.6) for m in METHODS}, "eval": {}}, {"best single": "s#1"})
    for method in METHODS:
        assert method in text
    assert "held-out" in text and "eval" in text and "s#1" in text and "0.5000" in text
