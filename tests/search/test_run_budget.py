"""search.run under a time budget: real smoke studies on the tiny bench, a few seconds each."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.options import RunOptions
from search.run import execute
from tests.search.test_run import _smoke_variant


def _states(study: optuna.Study, *states: TrialState) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=states)


def test_the_profile_time_budget_ends_the_run_and_says_how_to_resume(
    tiny_bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = _smoke_variant(tmp_path / "timed.toml", ("n_trials = 8", "n_trials = 100"))
    toml.write_text(toml.read_text() + "\n[profiles.cpu]\ntimeout_s = 6\n")
    runs = tmp_path / "runs"
    started = time.time()
    assert execute(RunOptions(study=str(toml), data=tiny_bench, workdir=runs, device="cpu", started_at=started)) == 0
    took = time.time() - started
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="timed", storage=f"sqlite:///{runs / 'studies.db'}")
    finished = _states(study, TrialState.COMPLETE, TrialState.PRUNED)
    assert len(finished) < 100
    assert took < 6 + 20, "a 6 s budget: the run may end one (sub-second) epoch late, not trials late"
    assert "| trial | macro-F1 |" in out and "Next:" in out  # the table and the next commands, as without a budget
    assert f"Time budget reached: {len(finished)} trial" in out
    assert "6 s (timed.toml, cpu profile, counted from the command's start)" in out
    assert "run the same command again: it resumes the study" in out and "--n-trials 100 (without --timeout)" in out
    assert not _states(study, TrialState.RUNNING)
    waiting = {tuple(sorted(t.params.items())) for t in _states(study, TrialState.WAITING)}
    for trial in _states(study, TrialState.FAIL):  # a trial stopped at the budget is queued again
        assert str(trial.user_attrs["failure_reason"]).startswith("stopped at the time budget after epoch")
        assert tuple(sorted(trial.params.items())) in waiting
        assert f"Trial {trial.number} was stopped at the time budget" in out

    # --n-trials alone lifts the time budget: a run whose 6 s were spent long ago still runs its one more trial
    more = len(finished) + 1
    opts = RunOptions(study=str(toml), data=tiny_bench, workdir=runs, device="cpu", n_trials=more,
                      started_at=time.time() - 1000)
    assert execute(opts) == 0
    assert len(_states(study, TrialState.COMPLETE, TrialState.PRUNED)) == more
    assert "Time budget reached" not in capsys.readouterr().out


def test_a_trial_running_at_the_time_budget_is_stopped_and_runs_first_when_resumed(
    tiny_bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # one trial of 1000 epochs: it cannot end before the budget does
    toml = _smoke_variant(tmp_path / "long.toml", ("epochs = 3", "epochs = 1000"), ("patience = 3", "patience = 1000"),
                          ('name = "successive_halving"', 'name = "none"'), ("n_trials = 8", "n_trials = 2"))
    runs = tmp_path / "runs"
    started = time.time()
    opts = RunOptions(study=str(toml), data=tiny_bench, workdir=runs, device="cpu", timeout_s=8, started_at=started)
    assert execute(opts) == 0
    took = time.time() - started
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="long", storage=f"sqlite:///{runs / 'studies.db'}")
    [cut] = study.trials[:1]
    epochs = len(cut.intermediate_values)
    assert cut.state == TrialState.FAIL and 1 <= epochs < 1000
    assert cut.user_attrs["failure_reason"] == f"stopped at the time budget after epoch {epochs} of 1000"
    assert took < 8 + 20
    assert "Time budget reached: 0 trials fit in this run's 8 s (--timeout, counted from the command's start)." in out
    assert f"Trial 0 was stopped at the time budget after epoch {epochs} of 1000; it runs first when the study resumes." in out
    [queued] = _states(study, TrialState.WAITING)
    assert queued.params == cut.params

    # the same command resumes with the queued trial, which is cut again and then left out
    assert execute(RunOptions(**{**vars(opts), "started_at": time.time(), "timeout_s": 6})) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="long", storage=f"sqlite:///{runs / 'studies.db'}")
    again = study.trials[1]
    assert again.params == cut.params and again.state == TrialState.FAIL
    assert not _states(study, TrialState.WAITING, TrialState.RUNNING)
    assert "Trial 1 was stopped at the time budget" in out and "it was cut before and is not queued again" in out
