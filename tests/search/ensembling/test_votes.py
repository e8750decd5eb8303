"""search.ensembling.votes: hard votes and their ties, given weights, and the honest estimate of each."""

from __future__ import annotations

import numpy as np
import pytest

from search.ensembling.honest import BASELINES, choice_probs, choose, honest_estimate, methods, person_halves
from runners.metrics import macro_f1
from search.ensembling.selection import Candidate, SelectionSettings, select
from search.deploy.votes import combine
from search.ensembling.votes import VoteSpec, hard_vote, parse_weights, soft_vote


def onehot(classes: list[int], p: float = 0.6) -> np.ndarray:
    out = np.full((len(classes), 18), (1 - p) / 17)
    out[np.arange(len(classes)), classes] = p
    return out


def test_the_weighted_majority_wins() -> None:
    a, b, c = onehot([1, 1]), onehot([1, 2]), onehot([2, 2])
    assert hard_vote([a, b, c]).argmax(1).tolist() == [1, 2]
    assert hard_vote([a, b, c], [0.2, 0.2, 0.6]).argmax(1).tolist() == [2, 2]
    np.testing.assert_allclose(hard_vote([a, b, c]).sum(1), 1.0)


def test_a_tie_goes_to_the_class_with_the_larger_summed_probability() -> None:
    sure, unsure = onehot([4], p=0.9), onehot([7], p=0.3)
    assert hard_vote([sure, unsure]).argmax(1).tolist() == [4]
    assert hard_vote([unsure, sure]).argmax(1).tolist() == [4]  # not the first member's class
    # a soft vote can disagree with the hard one: two weak votes for 3 against one strong vote for 5
    probs = [onehot([3], p=0.2), onehot([3], p=0.2), onehot([5], p=0.99)]
    assert (hard_vote(probs).argmax(1), soft_vote(probs).argmax(1)) == ([3], [5])


def test_given_weights_are_parsed_by_trial_number_or_name() -> None:
    assert parse_weights("3=2, other#7=0.5", "s") == (("s#3", 2.0), ("other#7", 0.5))
    for bad in ("3", "3=x", "=1", ","):
        with pytest.raises(ValueError, match="--weights"):
            parse_weights(bad, "s")
    with pytest.raises(ValueError, match="all 0"):
        VoteSpec("soft", (("s#1", 0.0),))
    with pytest.raises(ValueError, match="vote must be one of"):
        VoteSpec("plurality")


def _pool(n: int = 240) -> tuple[list[Candidate], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 18, n)
    cands = []
    for k in range(4):
        probs = rng.dirichlet(np.ones(18), n)
        right = rng.random(n) < 0.5 + 0.1 * k
        probs[right, labels[right]] += 1.0
        cands.append(
            Candidate(
                "s",
                k,
                probs / probs.sum(1, keepdims=True),
                {"backbone": f"b{k}", "age_cutoff": 60, "height": 8, "width": 8, "crop": "full"},
            )
        )
    people = np.repeat(np.arange(n // 4), 4).astype(str)
    return cands, labels, people


def test_given_weights_ship_those_members_and_are_scored_on_held_out_people_only() -> None:
    cands, labels, people = _pool()
    vote = VoteSpec("soft", parse_weights("0=1,2=3", "s"))
    choices = {c.method: c for c in choose(cands, labels, SelectionSettings(), None, vote)}
    assert list(choices) == [*BASELINES, "given weights", "given weights + decision rule"]
    assert choices["given weights"].members == (0, 2) and choices["given weights"].weights == (0.25, 0.75)
    report = honest_estimate(cands, labels, people, SelectionSettings(), "split", 0, vote)
    _, score_rows = person_halves(people, labels, 0)[0]
    given = soft_vote([cands[0].probs, cands[2].probs], [0.25, 0.75])
    assert report.score("given weights").macro_f1 == pytest.approx(
        macro_f1(labels[score_rows], given[score_rows])
    )
    assert [s.method for s in report.scores] == list(methods(vote))
    assert report.vote == {"vote": "soft", "weights": {"s#0": 1.0, "s#2": 3.0},
                           "old_band_offset": "fitted with the decision rule"}
    with pytest.raises(ValueError, match=r"s#9.*not candidates"):
        choose(cands, labels, SelectionSettings(), None, VoteSpec("soft", (("s#9", 1.0),)))


def test_a_hard_vote_is_what_the_honest_estimate_scores() -> None:
    cands, labels, people = _pool()
    vote = VoteSpec("hard")
    report = honest_estimate(cands, labels, people, SelectionSettings(max_members=3), "split", 0, vote)
    assert [s.method for s in report.scores] == [
        *BASELINES,
        "selected ensemble, hard vote",
    ]  # no decision rule
    choices = choose(cands, labels, SelectionSettings(max_members=3), None, vote)
    hard = choices[-1]
    assert hard.vote == "hard"
    expected = hard_vote([cands[m].probs for m in hard.members], hard.weights)
    np.testing.assert_allclose(choice_probs(cands, hard), expected)
    assert 0.0 <= macro_f1(labels, expected) <= 1.0


def test_hard_vote_weights_are_learned_for_the_hard_vote() -> None:
    cands, labels, _ = _pool()
    rows = np.arange(0, 240, 2)
    sel = select(cands, labels, SelectionSettings(max_members=3), rows, vote="hard")
    vote = hard_vote([cands[m].probs[rows] for m in sel.members], sel.weights)
    assert sel.score == pytest.approx(macro_f1(labels[rows], vote))  # the score is the hard vote's
    best_single = max(macro_f1(labels[rows], c.probs[rows]) for c in cands)
    assert sel.score >= best_single
    with pytest.raises(ValueError, match="vote must be one of"):
        select(cands, labels, vote="majority")


def test_the_geometric_vote_is_the_renormalised_weighted_geometric_mean() -> None:
    a = np.array([[0.7, 0.3] + [0.0] * 16, [0.5, 0.5] + [0.0] * 16])
    b = np.array([[0.2, 0.8] + [0.0] * 16, [0.9, 0.1] + [0.0] * 16])
    got = combine([a, b], [1, 3], "geometric")
    raw = np.maximum(a, 1e-7) ** 0.25 * np.maximum(b, 1e-7) ** 0.75
    np.testing.assert_allclose(got, raw / raw.sum(1, keepdims=True))
    # a member sure a class is wrong vetoes it: the mean picks class 0, the geometric mean class 1
    sure = np.array([[0.9, 0.1] + [0.0] * 16])
    veto = np.array([[0.001, 0.6, 0.399] + [0.0] * 15])
    assert combine([sure, veto], None, "soft").argmax(1).tolist() == [0]
    assert combine([sure, veto], None, "geometric").argmax(1).tolist() == [1]


def test_a_geometric_vote_is_selected_and_scored_as_it_ships() -> None:
    cands, labels, people = _pool()
    rows = np.arange(0, 240, 2)
    sel = select(cands, labels, SelectionSettings(max_members=3), rows, vote="geometric")
    shipped = combine([cands[m].probs[rows] for m in sel.members], sel.weights, "geometric")
    assert sel.score == pytest.approx(macro_f1(labels[rows], shipped))
    vote = VoteSpec("geometric")
    report = honest_estimate(cands, labels, people, SelectionSettings(max_members=3), "split", 0, vote)
    assert [s.method for s in report.scores] == [*BASELINES, "selected ensemble, geometric-mean vote"]


def test_weights_whose_sum_overflows_are_refused_or_scaled() -> None:
    """Issue 23: --weights 0=1e308,1=1e308 was reported as "got (0.0, 0.0)"."""
    with pytest.raises(ValueError, match=r"--weights entry '0=1e308': the weight must be from 0 to 1e\+06"):
        parse_weights("0=1e308,1=1e308", "s")
    with pytest.raises(ValueError, match=r"--weights entry '3=-1': the weight must be from 0"):
        parse_weights("3=-1", "s")
    probs = [np.full((2, 18), 1 / 18), np.eye(18)[:2]]
    np.testing.assert_allclose(soft_vote(probs, [1.7e308, 1.7e308]), soft_vote(probs, [1, 1]))
