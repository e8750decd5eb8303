"""The procedure on a drawn candidate pool (numpy only): a fold group better held out wins the vote,
the procedure that ships is the best held-out row, and the fold groups' estimate is out-of-fold
over every person."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runners.classes import NUM_CLASSES
from runners.metrics import macro_f1, macro_f1_people_sd
from search.data import PersonSplit
from search.ensembling.candidates import CandidatePool
from search.ensembling.honest import FOLD_GROUPS, SELECTED
from search.ensembling.procedure import FOLD_FOOTING, GAIN_MARGIN, VoteGain, run_procedure, trials_vote_gain
from search.ensembling.selection import Candidate
from search.ensembling.votes import VoteSpec
from search.storage.study_attrs import StudyAttrs
from search.storage.trialstore import Validation

PEOPLE, IMAGES_EACH = 400, 3  # every person of the data; the first fifth are the validation people


def _probs(labels: np.ndarray, hit_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Softmax-like rows that put most mass on the true class for ``hit_rate`` of the rows, on a
    random class otherwise."""
    target = np.where(rng.random(len(labels)) < hit_rate, labels, rng.integers(0, NUM_CLASSES, len(labels)))
    probs = rng.random((len(labels), NUM_CLASSES)) * 0.3
    probs[np.arange(len(labels)), target] += 1.0
    return (probs / probs.sum(1, keepdims=True)).astype(np.float32)


def _pool(
    group_hit_rates: tuple[float, ...], trial_hit_rates: tuple[float, ...] = (0.55,) * 4, people_kept: bool = True
) -> CandidatePool:
    rng = np.random.default_rng(0)
    person = np.repeat(np.arange(PEOPLE), IMAGES_EACH)
    labels = np.repeat(rng.integers(0, NUM_CLASSES, PEOPLE), IMAGES_EACH)
    val_rows = np.flatnonzero(person < PEOPLE // 5)
    validation = Validation(val_rows, labels[val_rows], person[val_rows].astype(str), "fp")
    config = {"backbone": "test_resnet", "age_cutoff": 60, "height": 32, "width": 32, "crop": "full"}
    candidates = [
        Candidate("s", n, _probs(labels[val_rows], rate, rng), config, weights=Path(f"t{n}"))
        for n, rate in enumerate(trial_hit_rates)
    ]
    for n, rate in enumerate(group_hit_rates):
        oof = _probs(labels, rate, rng)  # every person predicted by the fold model that never saw them
        candidates.append(
            Candidate(
                "s", n, oof[val_rows], config, refit="folds-3", checkpoints=(Path("f0"),), all_people=(oof, labels),
                all_people_ids=person.astype(str) if people_kept else None,
            )
        )
    val_people = {str(p) for p in range(PEOPLE // 5)}
    names = sorted(str(p) for p in range(PEOPLE))
    split = PersonSplit(
        tuple(p for p in names if p not in val_people), tuple(p for p in names if p in val_people), 0, "holdout:0.2"
    )
    return CandidatePool("s", Path("."), StudyAttrs("fp", split), validation, candidates)


def test_a_fold_group_better_held_out_wins_most_of_the_vote() -> None:
    outcome = run_procedure(_pool((0.85,)))
    group = next(i for i, c in enumerate(outcome.candidates) if c.is_fold_group)
    selected = outcome.choice(SELECTED)
    assert selected.weights[selected.members.index(group)] > 0.5
    for held_out in outcome.honest.score(SELECTED).weights:  # chosen on each half alike
        assert max(held_out) > 0.5
    assert outcome.choice("best single").members == (group,)
    assert outcome.shipped == FOLD_GROUPS and outcome.why.startswith("fold groups' vote")


def test_a_fold_group_far_ahead_ships_as_the_fold_groups_vote_with_its_out_of_fold_estimate() -> None:
    outcome = run_procedure(_pool((0.97,), trial_hit_rates=(0.4,) * 4))
    group = next(i for i, c in enumerate(outcome.candidates) if c.is_fold_group)
    assert outcome.choice("best single").members == (group,)
    assert outcome.honest.score("best single").macro_f1 == outcome.honest.score(FOLD_GROUPS).macro_f1
    assert outcome.shipped == FOLD_GROUPS  # it wins the tie: its estimate rests on every person
    assert outcome.estimate(FOLD_GROUPS)[1].startswith("out-of-fold, all people")


def test_trials_better_than_the_fold_group_keep_the_vote() -> None:
    outcome = run_procedure(_pool((0.3,), trial_hit_rates=(0.8,) * 4))
    group = next(i for i, c in enumerate(outcome.candidates) if c.is_fold_group)
    assert group not in outcome.choice(SELECTED).members
    assert outcome.shipped != FOLD_GROUPS
    assert outcome.honest.score(outcome.shipped).macro_f1 == max(s.macro_f1 for s in outcome.honest.scores)
    assert "highest held-out macro-F1" in outcome.why and "ahead of the fold groups' vote" in outcome.why


@pytest.mark.parametrize(("group_hit_rate", "ships"), [(0.8, False), (0.88, True)])
def test_the_fold_groups_vote_ships_unless_a_row_is_ahead_of_it_by_more_than_the_footing_gap(
    group_hit_rate: float, ships: bool
) -> None:
    outcome = run_procedure(_pool((group_hit_rate,), trial_hit_rates=(0.55,) * 4))
    scores = {s.method: s.macro_f1 for s in outcome.honest.scores}
    behind = max(scores.values()) - scores[FOLD_GROUPS]
    assert behind > 0.02, "a trial row is ahead of the fold group held out"
    assert (behind <= FOLD_FOOTING) == ships and (outcome.shipped == FOLD_GROUPS) == ships
    if not ships:
        assert scores[outcome.shipped] == max(scores.values())


def test_the_fold_groups_estimate_is_out_of_fold_over_every_person() -> None:
    outcome = run_procedure(_pool((0.8, 0.7)))
    groups = [c for c in outcome.candidates if c.is_fold_group]
    assert outcome.choice(FOLD_GROUPS).weights == (0.5, 0.5)
    probs = (groups[0].all_people[0] + groups[1].all_people[0]) / 2
    labels = groups[0].all_people[1]
    assert outcome.all_people[FOLD_GROUPS][0] == pytest.approx(macro_f1(labels, probs))
    estimate, on = outcome.estimate(FOLD_GROUPS)
    gain = outcome.vote_gain
    assert gain is not None and gain.members == 3 and gain.added > 0, "independent trial errors: the vote gains"
    assert estimate == pytest.approx(outcome.all_people[FOLD_GROUPS][0] + gain.added)
    assert on == f"out-of-fold, all people ({PEOPLE * 3} images) + {gain.text()}"
    assert outcome.estimate(SELECTED) == (outcome.honest.score(SELECTED).macro_f1, "held-out, cv")
    assert f"out-of-fold, all people ({PEOPLE * 3} images)" in outcome.table()
    saved = outcome.to_dict()
    assert saved["out_of_fold_all_people"][FOLD_GROUPS]["macro_f1"] == outcome.all_people[FOLD_GROUPS][0]
    assert saved["fold_vote_gain"]["added"] == gain.added
    assert set(outcome.all_people) == {FOLD_GROUPS}  # a row with trials has no such estimate


def test_without_fold_groups_there_is_no_fold_row() -> None:
    outcome = run_procedure(_pool(()))
    assert FOLD_GROUPS not in outcome.methods and outcome.all_people == {}
    assert "out-of-fold" not in outcome.table()


@pytest.mark.parametrize("old_band", [True, False])
def test_a_geometric_vote_competes_with_the_fold_groups_and_takes_no_decision_rule(old_band: bool) -> None:
    """The registry's geometric vote (search.deploy.votes) beside fold groups: its row is scored held
    out, it has no decision-rule row whatever --old-band-offset says, and the fold groups' vote
    keeps its equal-weight soft vote and its out-of-fold estimate."""
    vote = VoteSpec("geometric", old_band=old_band)
    outcome = run_procedure(_pool((0.8, 0.7)), vote=vote)
    assert outcome.methods == ("best single", "top-3 soft vote", "top-5 soft vote",
                               "selected ensemble, geometric-mean vote", FOLD_GROUPS)
    assert outcome.choice().vote == "geometric" and not outcome.choice().offsets
    assert outcome.choice(FOLD_GROUPS).vote == "soft" and FOLD_GROUPS in outcome.all_people
    assert outcome.shipped in outcome.methods
    assert outcome.honest.vote["old_band_offset"] == "none: a geometric vote takes no decision rule"
    assert all(row["decision_rule"] is None for row in outcome.to_dict()["final"])


def test_the_vote_gain_is_the_vote_of_the_k_best_trials_over_their_mean_on_the_validation_people() -> None:
    pool = _pool((0.8,))
    labels = np.asarray(pool.validation.labels)
    trials = [c for c in pool.candidates if not c.refit]
    gain = trials_vote_gain(list(pool.candidates), labels, 3, margin=None)
    best = sorted(trials, key=lambda c: macro_f1(labels, c.probs), reverse=True)[:3]
    assert gain.trials == tuple(c.name for c in best), "the fold group itself is not a trial"
    assert gain.vote == pytest.approx(macro_f1(labels, np.mean([c.probs for c in best], axis=0)))
    assert gain.mean_single == pytest.approx(np.mean([macro_f1(labels, c.probs) for c in best]))
    four = trials_vote_gain(list(pool.candidates), labels, 5, margin=None)
    assert four.members == 4 and len(four.trials) == 4, "fewer trials than folds: the vote of all of them"
    assert VoteGain(3, (), vote=0.40, mean_single=0.45).added == 0.0, "a vote that lost adds nothing"


def test_only_trials_within_the_margin_of_the_best_vote_in_the_gain() -> None:
    """One strong trial among weak ones: their vote gains much over their mean, nothing over the
    strong one, so the estimate adds no gain and says why; trials alike all vote."""
    uneven = _pool((0.8,), trial_hit_rates=(0.9, 0.4, 0.4, 0.4))
    labels = np.asarray(uneven.validation.labels)
    unfiltered = trials_vote_gain(list(uneven.candidates), labels, 3, margin=None)
    assert unfiltered.members == 3 and unfiltered.gain > 0.05, "the test needs a vote that gains over a weak mean"
    outcome = run_procedure(uneven)
    assert outcome.vote_gain.members == 1 and outcome.vote_gain.added == 0.0
    value, on = outcome.estimate(FOLD_GROUPS)
    assert value == outcome.all_people[FOLD_GROUPS][0]
    assert on.endswith(f"no vote gain (no other trial within {GAIN_MARGIN:.2f} of the best)")
    alike = _pool((0.8,), trial_hit_rates=(0.6, 0.6, 0.6, 0.5))
    singles = {c.name: macro_f1(labels, c.probs) for c in alike.candidates if not c.refit}
    within = sorted((n for n in singles if max(singles.values()) - singles[n] <= GAIN_MARGIN),
                    key=singles.__getitem__, reverse=True)
    assert 2 <= len(within) < len(singles), "the test needs some trials within the margin and one out of it"
    gain = trials_vote_gain(list(alike.candidates), labels, 4)
    assert gain.trials == tuple(within) and gain.margin == GAIN_MARGIN


def test_with_one_trial_the_estimate_is_the_out_of_fold_score_alone() -> None:
    pool = _pool((0.8,))
    pool = CandidatePool(pool.study, pool.workdir, pool.attrs, pool.validation,
                         [c for c in pool.candidates if c.refit or c.number == 0])
    outcome = run_procedure(pool)
    assert outcome.vote_gain is None
    assert outcome.estimate(FOLD_GROUPS) == (outcome.all_people[FOLD_GROUPS][0],
                                             f"out-of-fold, all people ({PEOPLE * 3} images)")


def test_every_estimate_says_how_far_its_people_alone_move_it() -> None:
    outcome = run_procedure(_pool((0.8, 0.7)))
    groups = [c for c in outcome.candidates if c.is_fold_group]
    probs = (groups[0].all_people[0] + groups[1].all_people[0]) / 2
    person = np.repeat(np.arange(PEOPLE), IMAGES_EACH).astype(str)
    oof_sd = outcome.estimate_sd(FOLD_GROUPS)
    assert oof_sd == pytest.approx(macro_f1_people_sd(groups[0].all_people[1], probs, person))
    held_out_sd = outcome.estimate_sd(SELECTED)
    assert held_out_sd == outcome.honest.score(SELECTED).macro_f1_sd
    assert held_out_sd > oof_sd > 0  # 80 validation people against all 400
    value, on = outcome.estimate(SELECTED)
    assert outcome.estimate_text(SELECTED) == f"{value:.4f} ± {held_out_sd:.3f} over people ({on})"
    assert outcome.to_dict()["out_of_fold_sd_over_people"] == {FOLD_GROUPS: oof_sd}


def test_a_fold_group_saved_without_its_people_has_no_spread_and_says_nothing() -> None:
    outcome = run_procedure(_pool((0.8, 0.7), people_kept=False))
    value, on = outcome.estimate(FOLD_GROUPS)
    assert outcome.estimate_sd(FOLD_GROUPS) is None
    assert outcome.estimate_text(FOLD_GROUPS) == f"{value:.4f} ({on})"
