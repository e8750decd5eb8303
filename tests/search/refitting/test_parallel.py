"""Fold models in several processes: how they are dealt, what is missing, and a run of two real
spawned processes on the tiny refit study (the phase around it: tests/search/refitting/test_phase.py)."""

from __future__ import annotations

import optuna

from search.engine.options import RunOptions, plan_run
from search.refitting.parallel import FoldJob, deal, missing_folds, refit_in_processes
from search.refitting.store import RefitStore
from search.refitting.train import open_refit


def test_jobs_are_dealt_round_robin_best_trial_first() -> None:
    jobs = [FoldJob(7, 0), FoldJob(7, 1), FoldJob(7, 2), FoldJob(3, 0), FoldJob(3, 1)]
    assert deal(jobs, 2) == [[jobs[0], jobs[2], jobs[4]], [jobs[1], jobs[3]]]
    assert deal(jobs[:1], 4) == [[jobs[0]]], "no process without a model to train"
    assert deal([], 2) == [[]] and deal(jobs, 1) == [jobs]


def test_two_processes_train_the_missing_folds_and_skip_what_does_not_fit(refit_study) -> None:
    ctx = open_refit(refit_study.name, refit_study.storage, refit_study.workdir)
    best = optuna.load_study(study_name=refit_study.name, storage=refit_study.storage).best_trial
    store = RefitStore(refit_study.store, best.number)
    assert missing_folds(ctx, best, 2) == [0, 1] and (store.folds_dir(2) / "plan.json").is_file()
    plan = plan_run(RunOptions(study=str(refit_study.workdir / "refit.toml"), name=refit_study.name,
                               storage=refit_study.storage, workdir=refit_study.workdir, device="cpu"))

    [report] = refit_in_processes(ctx, plan, [best], 2, 0.0, workers=2)  # no time: nothing fits
    assert report["folds_done"] == 0 and not report["complete"]
    assert [r["trained"] for r in report["runs"]] == [False, False]

    [report] = refit_in_processes(ctx, plan, [best], 2, None, workers=2)  # no limit: one fold each
    assert report["complete"] and report["folds_done"] == 2 and 0.0 <= report["oof_macro_f1"] <= 1.0
    assert [r["trained"] for r in report["runs"]] == [True, True]
    assert missing_folds(ctx, best, 2) == []
