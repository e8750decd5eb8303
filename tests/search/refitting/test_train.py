"""Refits: fold plans, resume after an interruption, the all-people refit, and refits as
ensemble candidates and bundle members."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from search.data import image_cache
from search.deploy import Bundle
from search.deploy.graph import build_checkpoint, build_ensemble, torch_predict
from search.ensembling.candidates import load_candidates
from search.ensembling.honest import SELECTED, Choice
from search.ensembling.procedure import run_procedure
from search.ensembling.votes import VoteSpec, parse_weights
from search.export import export_bundle
from search.refit import main
from search.refitting.store import FoldPlan, RefitError, RefitStore
from search.engine.budget import RefitBudget
from search.refitting.train import (
    choose_trials,
    open_refit,
    refit_all,
    refit_config,
    refit_folds,
    refit_table,
    train_model,
)
from search.studyfile.parse import StudyFileError, load_study_spec


class Answers(RefitBudget):
    """A budget that says yes to its first ``yes`` questions and no after (no clock involved)."""

    def __init__(self, yes: int) -> None:
        super().__init__(None)
        self.yes = yes

    def fits(self, seconds: float) -> bool:
        self.yes -= 1
        return self.yes >= 0


def _trial(refit_study, number: int):
    ctx = open_refit(refit_study.name, refit_study.storage)
    return ctx, choose_trials(ctx.study, [number])[0]


def test_folds_are_person_disjoint_and_cover_everyone(refit_study) -> None:
    from search.refitting.train import fold_plan

    ctx, _ = _trial(refit_study, 0)
    plan = fold_plan(ctx, 4)
    people = [p for fold in plan.folds for p in fold]
    assert sorted(people) == sorted(refit_study.data.people["person"].astype(str)) and len(
        set(people)
    ) == len(people)
    assert plan.seed == ctx.data.split.seed and plan.fingerprint == refit_study.data.fingerprint
    assert fold_plan(ctx, 4) == plan  # seeded: the same folds every time


def test_a_killed_refit_redoes_only_the_missing_folds(refit_study) -> None:
    ctx, trial = _trial(refit_study, 0)
    store = RefitStore(ctx.trials, 0)
    # Fold 0 fits (start and after epoch 1), folds 1 and 2 are not started.
    report = refit_folds(ctx, trial, 3, budget=Answers(2))
    assert report["folds_done"] == 1 and [r["trained"] for r in report["runs"]] == [True, False, False]
    first = (store.fold_dir(3, 0) / "weights.safetensors").stat().st_mtime_ns
    (store.folds_dir(3) / ".fold_1.leftover").mkdir()  # what a kill during a save leaves behind
    report = refit_folds(ctx, trial, 3)
    assert report["complete"] and [r["name"] for r in report["runs"]] == ["fold 1", "fold 2"]
    assert (store.fold_dir(3, 0) / "weights.safetensors").stat().st_mtime_ns == first
    assert store.fold_groups() == [3] and 0.0 <= report["oof_macro_f1"] <= 1.0
    assert "oof_macro_f1" in ctx.study.user_attrs["refit_00000_folds3"]


def test_a_fold_model_the_budget_stops_is_kept_and_trained_again_when_there_is_time(refit_study) -> None:
    """Cut after epoch 1 of 2 (start: yes, after epoch 1: no), fold 0 is kept with that epoch's
    weights and held-out predictions, so that its group completes; a later refit that is cut again no
    sooner keeps the stored one, and one with the time replaces it with a whole model."""
    from search.refitting.train import fold_work

    ctx, trial = _trial(refit_study, 0)
    store = RefitStore(ctx.trials, 0)
    fold0 = store.fold_dir(3, 0)
    report = refit_folds(ctx, trial, 3, budget=Answers(1))
    assert report["runs"][0] == {"name": "fold 0", "seconds": report["runs"][0]["seconds"], "trained": False,
                                 "cut_at_epoch": 1}
    assert store.cut_at(fold0) == 1 and not store.has_whole_model(fold0) and report["cut_folds"] == {"0": 1}
    rows, probs = store.load_held_out(fold0)
    assert len(rows) == len(probs) > 0 and np.allclose(probs.sum(1), 1.0, atol=1e-4)
    assert fold_work(ctx, trial, 3).models == 3  # still to train: the cut model too
    cut_weights = (fold0 / "weights.safetensors").stat().st_mtime_ns
    report = refit_folds(ctx, trial, 3, budget=Answers(1))  # cut after epoch 1 again: not further
    assert report["runs"][0]["cut_at_epoch"] is None and (fold0 / "weights.safetensors").stat().st_mtime_ns == cut_weights
    # the other folds train whole: the group is complete, its out-of-fold summary names the cut fold
    report = refit_folds(ctx, trial, 3, folds=(1, 2))
    assert report["complete"] and report["cut_folds"] == {"0": 1}
    assert store.load_summary(3)["cut_folds"] == {"0": 1}
    assert "fold 1 cut after epoch 1" in refit_table([report])
    report = refit_folds(ctx, trial, 3)  # time enough: fold 0 again, whole this time
    assert [r["name"] for r in report["runs"]] == ["fold 0"] and report["runs"][0]["trained"]
    assert store.has_whole_model(fold0) and report["cut_folds"] == {} and store.load_summary(3)["cut_folds"] == {}
    assert fold_work(ctx, trial, 3).models == 0


def test_the_cli_resumes_after_the_time_budget(refit_study, capsys) -> None:
    args = ["--name", refit_study.name, "--storage", refit_study.storage, "--trials", "1", "--folds", "2"]
    assert main([*args, "--timeout", "1e-9"]) == 3
    assert "run the same command again" in capsys.readouterr().out
    assert main(args) == 0
    assert RefitStore(refit_study.store, 1).fold_groups() == [2]


def test_another_fold_plan_in_the_folder_is_refused(refit_study, tmp_path: Path) -> None:
    store = RefitStore(refit_study.store, 0)
    store.save_plan(FoldPlan(2, 0, "abc", (("a",), ("b",))))
    store.save_plan(FoldPlan(2, 0, "abc", (("a",), ("b",))))  # the same plan again is fine
    with pytest.raises(RefitError, match=r"folds-2.*holds other folds .*Delete"):
        store.save_plan(FoldPlan(2, 1, "abc", (("b",), ("a",))))


def test_a_refit_runs_every_epoch_the_trial_ran_unless_told_its_best_epochs_count() -> None:
    import datetime

    from optuna.distributions import FloatDistribution
    from optuna.trial import FrozenTrial, TrialState

    from runners.config import TrialConfig

    now = datetime.datetime.now()
    trial = FrozenTrial(
        number=4, trial_id=4, state=TrialState.COMPLETE, value=0.5, datetime_start=now, datetime_complete=now,
        params={"lr": 0.01}, distributions={"lr": FloatDistribution(1e-3, 1e-1)}, system_attrs={},
        intermediate_values={1: 0.3, 2: 0.5, 3: 0.4, 4: 0.45, 5: 0.44},
        user_attrs={"config": TrialConfig(epochs=5).to_dict(), "best_epoch": 2, "epochs_run": 5},
    )
    assert refit_config(trial).epochs == 5  # the whole schedule, as trials are scored at their last epoch
    assert refit_config(trial, "best").epochs == 2
    with pytest.raises(RefitError, match="epochs must be one of"):
        refit_config(trial, "last")


def test_the_budget_is_asked_for_the_epochs_left_at_the_epochs_own_pace(refit_study) -> None:
    ctx, trial = _trial(refit_study, 1)
    asked: list[float] = []

    class Recording(RefitBudget):
        def fits(self, seconds: float) -> bool:
            asked.append(seconds)
            return True

    config = refit_config(trial).replace(epochs=3)
    result, _ = train_model(ctx, config, ctx.data.train_rows, ctx.data.val_rows, Recording(None), val_pass=5.0)
    # each epoch's own training time (not the model's set-up), and the one validation pass at the end
    epoch = [r.seconds - r.val_seconds for r in result.history]
    assert asked == pytest.approx([2 * epoch[0] + 5.0, 1 * (epoch[0] + epoch[1]) / 2 + 5.0])
    assert [math.isnan(r.val_macro_f1) for r in result.history] == [True, True, False]  # only the kept epoch validated


def test_a_fold_group_s_cost_scales_the_trial_s_training_and_validation_apart(refit_study) -> None:
    """K fold models train on (K-1) x every image in all and hold out every image once; the trial
    trained on its training rows and validated on its validation rows, each epoch's split recorded."""
    from search.engine.budget import EpochPace
    from search.refitting.train import fold_work
    from search.storage.trial_attrs import TrialAttrs

    ctx, recorded = _trial(refit_study, 1)
    trial = copy.deepcopy(recorded)  # 1 s epochs (the fixture's), a quarter of each its validation pass
    trial.user_attrs = {**trial.user_attrs, "history": [{"epoch": e, "seconds": 1.0, "val_seconds": 0.25} for e in (1, 2)]}
    pace = EpochPace.of(TrialAttrs.read(trial))
    assert pace == EpochPace(1.0, 0.25)
    images, epochs = len(ctx.data.data.images), refit_config(trial).epochs
    trained, validated = len(ctx.data.train_rows), len(ctx.data.val_rows)
    work = fold_work(ctx, trial, 3)
    assert work.models == 3 and work.epochs == 3 * epochs
    # every epoch trains, only the last validates
    assert work.seconds == pytest.approx(epochs * (pace.seconds - pace.val_seconds) * 2 * images / trained
                                         + pace.val_seconds * images / validated)
    every_epoch_validating = epochs * pace.scaled(2 * images / trained, images / validated)
    assert work.seconds < every_epoch_validating


def test_all_people_refit_trains_on_everyone_for_the_chosen_epochs(refit_study) -> None:
    ctx, trial = _trial(refit_study, 1)
    report = refit_all(ctx, trial, epochs="ran")
    assert report["complete"] and report["epochs"] == trial.user_attrs["epochs_run"]
    store = RefitStore(ctx.trials, 1)
    model = store.load_model(store.all_dir())
    assert (
        model.config["epochs"] == trial.user_attrs["epochs_run"]
        and model.summary["trained_on"] == "all people"
    )
    assert refit_all(ctx, trial)["runs"] == []  # done already: nothing retrains


def test_refits_enter_selection_and_the_bundle_predicts_with_k_checkpoints(
    refit_study, tmp_path: Path
) -> None:
    ctx, trial0 = _trial(refit_study, 0)
    refit_folds(ctx, trial0, 3)
    refit_all(ctx, choose_trials(ctx.study, [1])[0])
    pool = load_candidates(refit_study.name, refit_study.storage)
    names = [c.name for c in pool.candidates]
    assert names == ["tinyrefit#0", "tinyrefit#1/all", "tinyrefit#2", "tinyrefit#0/folds-3"]
    group = pool.candidates[3]
    store = RefitStore(refit_study.store, 0)
    _, oof, _ = store.load_oof(3)
    np.testing.assert_array_equal(group.probs, oof[refit_study.validation.rows])  # out-of-fold on validation
    people = refit_study.data.images["person"].to_numpy().astype(str)  # each row's person: the estimate's spread
    np.testing.assert_array_equal(store.load_oof_people(3), people)
    np.testing.assert_array_equal(group.all_people_ids, people)
    assert len(group.weight_files()) == 3 and group.weights is None
    refitted = pool.candidates[1]
    assert refitted.weights == RefitStore(refit_study.store, 1).all_dir() / "weights.safetensors"
    np.testing.assert_array_equal(
        refitted.probs, refit_study.store.load_probs(1, last=True)
    )  # the trial's own score (at its last epoch) stands

    given = run_procedure(pool, vote=VoteSpec("soft", parse_weights("0/folds-3=1", refit_study.name)))
    assert given.choice("given weights").members == (3,)  # --weights can ship a fold group by its name
    outcome = run_procedure(pool)
    outcome = dataclasses.replace(outcome, final=[Choice(SELECTED, (3,), (1.0,))])
    manifest = export_bundle(outcome, tmp_path / "bundle", decision_rule="off")
    (member,) = manifest.members  # the fold group is one voter whose K checkpoints are averaged
    assert member.name == "tinyrefit#0/folds-3" and len(member.checkpoints) == 3
    assert member.weight == pytest.approx(1.0)

    images = image_cache(
        refit_study.data.paths,
        32,
        32,
        "full",
        refit_study.workdir / "cache",
        key=refit_study.data.fingerprint,
    )[refit_study.validation.rows[:10]]
    modules = [build_checkpoint(group.config, f)[0] for f in group.weight_files()]
    expected = np.mean([torch_predict(build_ensemble([m], [1.0]), images) for m in modules], axis=0)
    bundle = Bundle.load(tmp_path / "bundle")
    np.testing.assert_allclose(bundle.predict_proba(images), expected, atol=1e-5)
    np.testing.assert_allclose(bundle.predict_proba(images, backend="onnx"), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--folds [K]"),
        (["--trials", "7", "--all-people"], "trial(s) [7]"),
        (["--trials", "0", "--folds", "1"], "--folds must be at least 2"),
    ],
)
def test_bad_requests_say_what_to_do(refit_study, caplog, args: list[str], message: str) -> None:
    assert main(["--name", refit_study.name, "--storage", refit_study.storage, *args]) == 2
    assert message in caplog.text


def test_folds_from_a_study_file_without_them_is_refused(refit_study, caplog) -> None:
    path = refit_study.workdir / "refit.toml"
    path.write_text(path.read_text().replace("folds = 3\n", ""))
    assert (
        main(["--name", refit_study.name, "--storage", refit_study.storage, "--trials", "0", "--folds"]) == 2
    )
    assert "refit.toml sets no [split] folds; add folds = K" in caplog.text


@pytest.mark.parametrize("value", ["1", "-2", '"3"', "2.5"])
def test_split_folds_is_checked_when_the_study_file_loads(tmp_path: Path, value: str) -> None:
    text = (Path(__file__).resolve().parents[3] / "studies" / "smoke.toml").read_text()
    path = tmp_path / "bad.toml"
    path.write_text(text.replace("val_fraction = 0.25", f"val_fraction = 0.25\nfolds = {value}"))
    with pytest.raises(StudyFileError, match=r"bad\.toml: split\.folds"):
        load_study_spec(path)
    path.write_text(text.replace("val_fraction = 0.25", "val_fraction = 0.25\nfolds = 5"))
    assert load_study_spec(path).split.folds == 5


def test_age_cutoff_ships_five_folds() -> None:
    assert load_study_spec("age_cutoff").split.folds == 5 and load_study_spec("smoke").split.folds == 0


def test_search_ensemble_scores_a_fold_group_on_eval_labels_with_its_k_models(refit_study) -> None:
    from search.data import load_eval
    from search.ensembling.evalscore import find_eval_labels, read_eval_labels, score_on_eval
    from runners.metrics import accuracy, macro_f1

    ctx, trial = _trial(refit_study, 0)
    refit_folds(ctx, trial, 2)
    pool = load_candidates(refit_study.name, refit_study.storage)
    group = next(i for i, c in enumerate(pool.candidates) if c.refit == "folds-2")
    cache = refit_study.workdir / "cache"
    scores = score_on_eval(pool.candidates, [Choice(SELECTED, (group,), (1.0,))], refit_study.data_root, cache)
    ev = load_eval(refit_study.data_root, check_images=False)
    labels = read_eval_labels(find_eval_labels(refit_study.data_root), ev.info["ImageID"].tolist())
    images = image_cache(ev.paths, 32, 32, "full", cache, key=ev.fingerprint)
    cand = pool.candidates[group]
    modules = [build_checkpoint(cand.config, f)[0] for f in cand.weight_files()]
    probs = torch_predict(build_ensemble(modules, [0.5, 0.5]), images)
    assert scores[SELECTED] == (macro_f1(labels, probs), accuracy(labels, probs))
