"""benchmarks/fold_gap.py on a real fold group of the tiny refit study: the gap splits exactly into
its two parts, and the vote it scores is the one search.ensemble scores on the eval labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import fold_gap
from search.ensembling.candidates import load_candidates
from search.ensembling.evalscore import score_on_eval
from search.ensembling.honest import SELECTED, Choice
from search.refitting.store import RefitStore
from search.refitting.train import choose_trials, open_refit, refit_folds
from tests.benchmarks.conftest import saved_result


def test_fold_gap_splits_the_gap_into_people_and_vote_and_matches_the_ensembles_eval(
    refit_study, tmp_path: Path
) -> None:
    ctx = open_refit(refit_study.name, refit_study.storage)
    trial = choose_trials(ctx.study, [0])[0]
    refit_folds(ctx, trial, 3)
    group = RefitStore(refit_study.store, 0).folds_dir(3)
    cache = refit_study.workdir / "cache"

    figures = fold_gap.main(["--groups", str(group), "--data", str(refit_study.data_root), "--names", "t0",
                             "--cache", str(cache), "--device", "cpu",
                             "--results-dir", str(tmp_path / "results")])
    (g,) = figures["groups"]
    assert g["name"] == "t0" and g["k"] == 3
    assert len(g["eval_single"]) == 3 and len(g["out_of_fold_per_model"]) == 3
    assert g["gap"] == pytest.approx(g["gap_people"] + g["gap_vote"])
    assert g["gap_vote"] == pytest.approx(g["eval_vote"]["macro_f1"] - g["eval_mean_single"]["macro_f1"])
    pool = load_candidates(refit_study.name, refit_study.storage)
    member = next(i for i, c in enumerate(pool.candidates) if c.refit == "folds-3")
    (f1, _), = score_on_eval(pool.candidates, [Choice(SELECTED, (member,), (1.0,))], refit_study.data_root,
                             cache).values()
    assert g["eval_vote"]["macro_f1"] == pytest.approx(f1), "the same vote search.ensemble scores"
    rule = g["rule"]
    assert set(rule["out_of_fold_gain"]) == {"macro_f1", "old_f1", "old_recall"}
    if rule["tau"] == 0 and rule["old_band_offset"] == 0:
        assert rule["eval_vote"] == g["eval_vote"], "no offsets: the vote unchanged"
    assert saved_result(tmp_path, "fold_gap")["figures"]["groups"][0]["gap"] == pytest.approx(g["gap"])


def test_fold_gap_refuses_unpaired_folders_and_an_unfinished_group(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="one data folder per group"):
        fold_gap.main(["--groups", "a", "b", "--data", "x"])
    (tmp_path / "folds-3").mkdir()
    (tmp_path / "folds-3" / "plan.json").write_text('{"k": 3}')
    with pytest.raises(SystemExit, match="not a finished fold group"):
        fold_gap.read_group(tmp_path / "folds-3")


def test_the_trials_vote_gain_is_the_vote_of_the_best_trials_minus_their_mean(tmp_path: Path) -> None:
    import numpy as np

    labels = np.array([0, 0, 1, 1, 2, 2])
    np.savez(tmp_path / "validation.npz", labels=labels)
    right, wrong = np.eye(18)[labels], np.eye(18)[(labels + 1) % 3]
    unsure = 0.4 * right + 0.6 * wrong  # wrong, but less sure than the other trial is right
    first = np.where(np.arange(6)[:, None] < 4, right, unsure)  # right on rows 0-3
    second = np.where(np.arange(6)[:, None] >= 2, right, unsure)  # right on rows 2-5
    for name, probs in (("trial_00000", first), ("trial_00001", second), ("trial_00002", wrong)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "val_probs.npy", probs)
    gain = fold_gap.trial_vote_gain(tmp_path, 2)
    perfect = fold_gap._scores(labels, right)["macro_f1"]
    singles = [fold_gap._scores(labels, p)["macro_f1"] for p in (first, second)]
    assert sorted(gain["trials"]) == ["trial_00000", "trial_00001"], "the two best, not the wrong one"
    assert gain["vote"] == pytest.approx(perfect) and max(singles) < perfect
    assert gain["gain"] == pytest.approx(perfect - np.mean(singles)) and gain["gain"] > 0
    assert fold_gap.trial_vote_gain(tmp_path, 4) is None, "fewer trials than members"


def test_a_rule_fitted_out_of_fold_lifts_an_old_band_every_model_under_predicts() -> None:
    import numpy as np

    from runners.classes import NUM_CLASSES, OLD_BAND, decompose

    rng = np.random.default_rng(0)
    old = np.flatnonzero(decompose(np.arange(NUM_CLASSES))[2] == OLD_BAND)

    def biased(labels: np.ndarray) -> np.ndarray:
        """Right class on top, except that an old person's class loses to its 30-59 neighbour."""
        probs = rng.random((len(labels), NUM_CLASSES)) * 0.05
        probs[np.arange(len(labels)), labels] += 0.5
        is_old = np.isin(labels, old)
        probs[np.flatnonzero(is_old), labels[is_old] - 1] += 0.6
        return probs / probs.sum(1, keepdims=True)

    people = np.repeat(np.arange(120), 3)
    labels = np.repeat(rng.integers(0, NUM_CLASSES, 120), 3)
    ev_labels = np.repeat(rng.integers(0, NUM_CLASSES, 60), 3)
    oof = {"probs": biased(labels), "labels": labels}
    out = fold_gap.rule_on_out_of_fold(oof, people, ev_labels, biased(ev_labels))
    assert out["old_band_offset"] > 0, "the line moves toward the old band"
    assert out["out_of_fold_gain"]["old_f1"] > 0 and out["out_of_fold_gain"]["macro_f1"] > 0
    before = fold_gap._scores(ev_labels, biased(ev_labels))
    assert out["eval_vote"]["old_f1"] > before["old_f1"]


def test_a_data_folder_the_group_was_not_trained_on_is_refused(tiny_bench: Path, tmp_path: Path) -> None:
    import json

    import numpy as np

    group = tmp_path / "folds-2"
    for i in range(2):
        (group / f"fold_{i}").mkdir(parents=True)
        (group / f"fold_{i}" / "weights.safetensors").write_bytes(b"")
        (group / f"fold_{i}" / "config.json").write_text("{}")
    (group / "plan.json").write_text(json.dumps({"k": 2, "fingerprint": "0" * 64}))
    np.savez(group / "oof.npz", rows=np.arange(2), probs=np.zeros((2, 18)), fold=np.arange(2),
             labels=np.arange(2))
    with pytest.raises(SystemExit, match=r"is not the data .* was trained on .*its plan 000000000000"):
        fold_gap.main(["--groups", str(group), "--data", str(tiny_bench),
                       "--results-dir", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists(), "nothing saved"
