"""The study-level progress: the bar's text on a (fake) terminal, log lines elsewhere."""

from __future__ import annotations

import datetime
import io
import logging

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from runners import EpochRecord
from search.engine.budget import TimeBudget, TrialNeeds
from search.engine.progress import Snapshot, StudyProgress, clock_text, describe, run_watch

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _trial(number: int, state: TrialState, epochs: int, value: float | None = None,
           history: list[dict[str, float]] | None = None, reason: str | None = None) -> FrozenTrial:
    attrs: dict[str, object] = {}
    if history is not None:
        attrs["history"] = history
    if reason is not None:
        attrs["failure_reason"] = reason
    return FrozenTrial(
        number=number, trial_id=number, state=state, value=value,
        datetime_start=datetime.datetime.fromtimestamp(T0), datetime_complete=datetime.datetime.fromtimestamp(T0 + 60),
        params={"lr": 0.01}, distributions={"lr": FloatDistribution(1e-3, 1e-1)},
        user_attrs=attrs, system_attrs={}, intermediate_values={e: 0.1 for e in range(1, epochs + 1)},
    )


def _study() -> optuna.Study:
    """Eight finished trials (5 complete, 3 pruned; 3 epochs each on average), the best 0.8764 (#5)."""
    study = optuna.create_study(study_name="age_cutoff", direction="maximize")
    values = [0.61, 0.70, 0.75, 0.8764, 0.81]
    for number in range(8):
        if number in (1, 3, 6):
            study.add_trial(_trial(number, TrialState.PRUNED, 2))
        else:  # trial 7 stopped early after 2 epochs
            study.add_trial(_trial(number, TrialState.COMPLETE, 4 if number != 7 else 2, value=values.pop(0)))
    return study


def test_clock_text() -> None:
    assert [clock_text(s) for s in (0, 59.6, 192, 3725)] == ["0:00", "1:00", "3:12", "1:02:05"]


def test_the_eta_counts_the_epochs_left_and_the_budget_that_binds() -> None:
    snap = Snapshot(study="s", n_trials=20, finished=8, elapsed=192.0, best=(5, 0.8764), running=(9, 2, 4),
                    epoch_seconds=10.0, epochs_per_trial=3.0)
    # 12 trials x 3 epochs - the 2 epochs the running trial has done, at 10 s each
    assert snap.eta() == (340.0, "trials")
    assert snap.fraction() == pytest.approx(8 / 20)
    assert snap.text() == "8/20 trials · 3:12 · ETA 5:40 · best F1 0.8764 (#5) · trial 9 epoch 2/4"
    timed = Snapshot(**{**vars(snap), "time_budget": 480.0})
    assert timed.eta() == (288.0, "time")  # 288 s left < 340 s of epochs: time binds
    assert timed.fraction() == pytest.approx(192 / 480)
    assert timed.text() == "8/20 trials · 3:12/8:00 · ETA 4:48 (time budget) · best F1 0.8764 (#5) · trial 9 epoch 2/4"
    roomy = Snapshot(**{**vars(snap), "time_budget": 3600.0, "parallel": 2})
    assert roomy.eta() == (170.0, "trials")  # two workers share the epochs left
    unknown = Snapshot(study="s", n_trials=20, finished=0, elapsed=5.0)
    assert unknown.text() == "0/20 trials · 0:05 · ETA ? · best F1 -"


def test_the_bar_on_a_terminal_shows_trials_budget_best_epoch_and_eta() -> None:
    study = _study()
    stream = io.StringIO()
    clock = Clock(T0 + 192)
    progress = StudyProgress("age_cutoff", 20, TimeBudget(480, T0), bar=True, stream=stream, clock=clock, tick_s=None)
    progress.load(study)
    with progress.showing():
        progress.trial_started(9, 4)
        progress.epoch_done(9, 1, 4, 10.0)
        clock.now += 10
        progress.epoch_done(9, 2, 4, 10.0)
    frames = [f for f in stream.getvalue().split("\r") if f.strip()]
    last = frames[-1].strip()
    assert last.startswith("age_cutoff |")
    # 20 - 8 = 12 trials x 3 epochs - 2 done = 34 epochs x 10 s = 340 s > 278 s left: time binds
    assert last.endswith("| 8/20 trials · 3:22/8:00 · ETA 4:38 (time budget) · best F1 0.8764 (#5) · trial 9 epoch 2/4")
    assert any("trial 9 epoch 1/4" in f and "3:12/8:00" in f for f in frames)
    assert last.split("|")[1].count("#") == int(20 * 202 / 480)  # the bar fills with the elapsed share of the time budget


@pytest.mark.parametrize(("terminal", "mode", "bar"), [(True, "auto", True), (False, "auto", False), (True, "log", False)])
def test_a_bar_only_on_a_terminal_and_never_for_local_workers(terminal: bool, mode: str, bar: bool) -> None:
    stream = io.StringIO()
    watch = run_watch(_study(), 20, TimeBudget(480, T0), TrialNeeds(4, 2), mode, stream=stream,
                      terminal=lambda s: terminal)
    watch.progress.tick_s = None
    with watch.progress.showing():
        watch.trial_started(9, 4)
    assert watch.progress.wants_bar is bar
    assert ("age_cutoff |" in stream.getvalue()) is bar
    with pytest.raises(ValueError, match="progress must be one of auto, log"):
        run_watch(_study(), 20, TimeBudget(480, T0), TrialNeeds(4, 2), "bar", stream=stream)


def test_without_a_terminal_each_finished_trial_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    study = _study()
    stream = io.StringIO()
    watch = run_watch(study, 20, TimeBudget(None, T0), TrialNeeds(4, 2), stream=stream, terminal=lambda s: False)
    caplog.set_level(logging.INFO, logger="search.engine.progress")
    with watch.progress.showing():
        watch.trial_started(8, 4)
        for epoch in (1, 2, 3, 4):
            record = EpochRecord(epoch=epoch, train_loss=1.0, val_loss=1.0, val_macro_f1=0.5, val_accuracy=0.5,
                                 seconds=10.0, train_images_per_s=100.0)
            assert not watch.epoch_done(8, record, 4, pruned=False)  # no time budget: never cut
        assert not _lines(caplog)  # nothing per epoch
        study.add_trial(_trial(8, TrialState.COMPLETE, 4, value=0.9))
        watch.progress.trial_finished(study, study.trials[-1])
        study.add_trial(_trial(9, TrialState.PRUNED, 2, history=[{"val_macro_f1": 0.41}, {"val_macro_f1": 0.52}]))
        watch.progress.trial_finished(study, study.trials[-1])
    lines = _lines(caplog)
    assert len(lines) == 2 and stream.getvalue() == ""
    assert lines[0].startswith("trial 8 complete: macro-F1 0.9000, 4 epochs | 9/20 trials · ")
    assert "best F1 0.9000 (#8)" in lines[0] and "ETA " in lines[0]
    # 10 trials left x 3 epochs per finished trial (30 in 10) x 10 s per epoch
    assert lines[1].startswith("trial 9 pruned after epoch 2 (best macro-F1 0.5200) | 10/20 trials · ")
    assert lines[1].endswith("ETA 5:00 · best F1 0.9000 (#8)")


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("search")]


def test_a_failed_trial_is_described_with_its_reason() -> None:
    trial = _trial(4, TrialState.FAIL, 2, reason="stopped at the time budget after epoch 2 of 4")
    assert describe(trial) == "trial 4 fail: stopped at the time budget after epoch 2 of 4"
    copy = _trial(3, TrialState.FAIL, 0, reason="not run: a near copy of trial 0 (lr 0.00577 / 0.0058)")
    assert describe(copy) == "trial 3 not run: a near copy of trial 0 (lr 0.00577 / 0.0058)", "not called a failure"


def test_a_trial_kept_at_the_time_budget_is_described_as_complete_and_cut() -> None:
    trial = _trial(5, TrialState.COMPLETE, 3, value=0.61)
    trial.user_attrs["cut_by_budget"] = "stopped at the time budget after epoch 3 of 5"
    assert describe(trial) == "trial 5 complete: macro-F1 0.6100, 3 epochs (stopped at the time budget after epoch 3 of 5)"
    assert describe(_trial(6, TrialState.COMPLETE, 5, value=0.7)) == "trial 6 complete: macro-F1 0.7000, 5 epochs"
