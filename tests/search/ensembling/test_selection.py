"""Caruana selection on hand-made probability matrices."""

from __future__ import annotations

import numpy as np
import pytest

from search.ensembling.selection import (
    Candidate,
    SelectionSettings,
    macro_f1,
    rank_singles,
    select,
    soft_vote,
    top_k,
)


def cand(number: int, probs: np.ndarray, backbone: str = "b", cutoff: int = 60, size: int = 32) -> Candidate:
    config = {"backbone": backbone, "age_cutoff": cutoff, "height": size, "width": size, "crop": "full"}
    return Candidate("s", number, np.asarray(probs, dtype=np.float64), config)


def rows(*pairs: tuple[int, float]) -> np.ndarray:
    """An 18-vector with the given (class, probability) entries."""
    v = np.zeros(18)
    for c, p in pairs:
        v[c] = p
    return v


def test_picks_with_replacement_when_a_2_to_1_vote_is_best() -> None:
    y = np.array([0, 1])
    a = cand(0, [rows((0, 0.7), (1, 0.3)), rows((0, 0.55), (1, 0.45))])  # right on row 0 only
    b = cand(1, [rows((0, 0.2), (1, 0.8)), rows((1, 1.0))])  # right on row 1 only
    decoy = cand(2, [rows((5, 1.0)), rows((5, 1.0))])  # always wrong
    # A+B is wrong on row 0; only 2A+B gets both rows right.
    assert np.argmax(a.probs[0] + b.probs[0]) == 1
    sel = select([a, b, decoy], y, SelectionSettings(max_picks=5, max_per_backbone=None))
    assert sel.members == (0, 1)
    assert sel.weights == pytest.approx((2 / 3, 1 / 3))
    assert sel.picks[:3] == (0, 0, 1)
    vote = soft_vote([a.probs, b.probs], sel.weights)
    assert np.array_equal(vote.argmax(1), y)
    assert sel.score == pytest.approx(macro_f1(y, vote))
    assert sel.score > max(macro_f1(y, c.probs) for c in (a, b, decoy))


def complementary(
    n_models: int, backbones: list[str], cutoffs: list[int] | None = None
) -> tuple[list[Candidate], np.ndarray]:
    """Model i is confidently right on rows i::n and mildly wrong (its own wrong class) elsewhere,
    so every additional distinct member improves the soft vote."""
    n_rows = 3 * n_models
    y = np.arange(n_rows) % 6
    cands = []
    for i in range(n_models):
        p = np.full((n_rows, 18), 0.01)
        for r in range(n_rows):
            if r % n_models == i:
                p[r, y[r]] = 0.9
            else:
                p[r, 6 + i] = 0.5
                p[r, y[r]] = 0.1
        p /= p.sum(1, keepdims=True)
        cands.append(cand(i, p, backbones[i], (cutoffs or [60] * n_models)[i]))
    return cands, y


def test_without_caps_every_complementary_model_joins() -> None:
    cands, y = complementary(4, ["a", "a", "a", "b"])
    sel = select(cands, y, SelectionSettings(max_members=4, max_per_backbone=None))
    assert set(sel.members) == {0, 1, 2, 3}


def test_respects_the_per_backbone_cap() -> None:
    cands, y = complementary(4, ["a", "a", "a", "b"])
    sel = select(cands, y, SelectionSettings(max_members=4, max_per_backbone=2))
    backbones = [cands[m].backbone for m in sel.members]
    assert backbones.count("a") == 2 and backbones.count("b") == 1
    assert len({p for p in sel.picks if cands[p].backbone == "a"}) == 2  # the cap holds for every pick


def test_a_pool_of_one_backbone_is_not_capped_by_it() -> None:
    cands, y = complementary(4, ["a", "a", "a", "a"])  # a CPU study: every trial is the same backbone
    sel = select(cands, y, SelectionSettings(max_members=4, max_per_backbone=2))
    assert set(sel.members) == {0, 1, 2, 3}


def test_respects_the_per_age_cutoff_cap() -> None:
    cands, y = complementary(4, ["a", "b", "c", "d"], cutoffs=[58, 58, 60, 59])
    sel = select(cands, y, SelectionSettings(max_members=4, max_per_backbone=None, max_per_age_cutoff=1))
    cutoffs = [cands[m].age_cutoff for m in sel.members]
    assert sorted(cutoffs) == [58, 59, 60]


def test_respects_the_size_cap() -> None:
    cands, y = complementary(5, ["a", "b", "c", "d", "e"])
    sel = select(cands, y, SelectionSettings(max_members=2, max_per_backbone=None, max_picks=30))
    assert len(sel.members) == 2
    assert len(set(sel.picks)) == 2
    assert sum(sel.weights) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(5))
def test_never_below_the_best_single_on_the_selection_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 18, 300)
    cands = []
    for i in range(6):
        p = rng.dirichlet(np.ones(18), 300)
        p[np.arange(300), y] += rng.uniform(0, 0.2, 300)
        cands.append(cand(i, p / p.sum(1, keepdims=True), backbone=f"b{i % 2}"))
    sel_rows = rng.permutation(300)[:150]
    sel = select(cands, y, SelectionSettings(max_members=3), rows=sel_rows)
    best_single = max(macro_f1(y[sel_rows], c.probs[sel_rows]) for c in cands)
    assert sel.score >= best_single
    vote = soft_vote([cands[m].probs for m in sel.members], sel.weights)
    assert sel.score == pytest.approx(macro_f1(y[sel_rows], vote[sel_rows]))
    assert max(sel.history) == pytest.approx(sel.score)
    assert sel.members[0] == rank_singles(cands, y, sel_rows)[0]


def test_disagreement_bonus_prefers_a_different_model_over_a_duplicate() -> None:
    y = np.array([0, 1, 2, 3])
    strong = np.stack([rows((c, 0.9), (17, 0.1)) for c in (0, 1, 2, 0)])  # wrong on the last row
    a = cand(0, strong)
    dup = cand(1, strong * 0.99 + 0.01 / 18)  # the same predictions
    other = cand(2, np.stack([rows((0, 0.5), (9, 0.5 + 1e-3)) for _ in range(4)]))  # differs everywhere
    plain = select([a, dup, other], y, SelectionSettings(max_picks=2, max_per_backbone=None))
    bonus = select(
        [a, dup, other], y, SelectionSettings(max_picks=2, max_per_backbone=None, disagreement=0.5)
    )
    assert plain.picks == (0, 0)
    assert bonus.picks == (0, 2)
    # adding the other model does not raise macro-F1, so the returned ensemble stays the best prefix
    assert bonus.members == (0,)


def test_top_k_and_rank_follow_single_scores() -> None:
    cands, y = complementary(4, ["a", "b", "c", "d"])
    scores = [macro_f1(y, c.probs) for c in cands]
    ranked = rank_singles(cands, y)
    assert [scores[i] for i in ranked] == sorted(scores, reverse=True)
    assert top_k(cands, y, 2) == ranked[:2]
    assert sorted(top_k(cands, y, 10)) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"max_members": 0}, "max_members"),
        ({"max_picks": -1}, "max_picks"),
        ({"max_per_backbone": 0}, "max_per_backbone"),
        ({"disagreement": -0.1}, "disagreement"),
    ],
)
def test_bad_settings_name_the_setting(kwargs: dict, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        SelectionSettings(**kwargs)


def test_probabilities_of_another_validation_set_are_refused() -> None:
    cands, y = complementary(2, ["a", "b"])
    with pytest.raises(ValueError, match="s#0"):
        select(cands, y[:-1])
