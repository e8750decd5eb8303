"""The run loop's guard on each trial: who ran it, and no trial beyond the study's budget."""

from __future__ import annotations

import os
import socket

import optuna
from optuna.trial import TrialState

from search.engine.objective import TrialFailed
from search.engine.runstudy import worker_objective
from search.storage.trial_attrs import TrialAttrs


def test_trials_record_the_worker_that_ran_them() -> None:
    study = optuna.create_study()
    study.optimize(worker_objective(lambda trial: trial.suggest_float("x", 0, 1)), n_trials=2)
    assert {TrialAttrs.read(t).worker for t in study.trials} == {f"{socket.gethostname()}:{os.getpid()}"}


def test_a_trial_beyond_the_budget_is_not_run() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.ask()  # another worker's trial, still running
    ran: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        return 0.1

    study.optimize(worker_objective(objective, n_trials=3), n_trials=5, catch=(TrialFailed,))
    # 1 finished + 1 running leave room for one more; the next would make 4
    assert ran == [2]
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL]
    assert "budget of 3" in study.trials[3].user_attrs["failure_reason"]


def test_a_run_whose_budget_is_taken_by_running_trials_records_no_trial(smoke_run, tmp_path) -> None:
    """Issue 23: finished + running trials fill the budget, so the run starts nothing (it used to
    record an empty FAIL trial saying the budget was taken)."""
    import shutil

    from search.engine.runstudy import run_study
    from search.engine.trialbudget import count_trials

    db = tmp_path / "studies.db"
    shutil.copyfile(smoke_run.workdir / "studies.db", db)
    url = f"sqlite:///{db}"
    study = optuna.load_study(study_name="smoke", storage=url)
    finished = count_trials(study)
    study.ask()  # another worker's trial, still running
    before = [t.state for t in study.trials]
    run_study(smoke_run.options(storage=url, n_trials=finished + 1))
    assert [t.state for t in study.trials] == before
