"""The time budget of a run: where it comes from, when trials start and stop, what the run says at its end.

search.run under a time budget: real smoke studies on the tiny bench, a few seconds each.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from search.engine.budget import (
    GROUP_SLACK,
    TIME_CUT_REASON,
    Deadline,
    EpochPace,
    RefitBudget,
    RefitReserve,
    TimeBudget,
    TrialNeeds,
    format_duration,
    process_started_at,
    requeue,
    run_outcome,
    search_took_share,
    time_budget,
    trial_pace,
)
from search.engine.options import RunOptions, plan_run
from search.ensembling.candidates import load_candidates
from search.run import build_parser, execute, options_from_args
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore
from search.studyfile.parse import StudyFileError, load_study_spec
from tests.search.verbs.test_run import _smoke_variant

SHIPPED = ["age_cutoff", "augment", "backbone", "finetune", "full"]
T0 = 1_800_000_000.0  # a fixed start, seconds since the epoch


@pytest.mark.parametrize("name", SHIPPED)
def test_the_cpu_profile_of_every_shipped_study_carries_an_eight_minute_budget(name: str) -> None:
    cpu, gpu = load_study_spec(name, "cpu"), load_study_spec(name, "gpu")
    assert cpu.timeout_s == 480.0
    assert gpu.timeout_s is None  # a GPU study runs its trials
    budget = time_budget(cpu, timeout_s=None, n_trials=None, started_at=T0)
    assert budget.seconds == 480.0 and budget.deadline == T0 + 480.0
    assert f"{name}.toml, cpu profile" == budget.source


def test_flags_override_the_profile_budget() -> None:
    spec = load_study_spec("age_cutoff", "cpu")
    assert time_budget(spec, 90.0, None, T0) == TimeBudget(90.0, T0, "--timeout")
    # an explicit trial count is a promise of that many trials: no time limit unless --timeout says so
    assert time_budget(spec, None, 30, T0).seconds is None
    assert time_budget(spec, 90.0, 30, T0).seconds == 90.0
    for nothing in (0.0, -1.0):  # a budget of nothing is refused; --n-trials alone lifts the time budget
        with pytest.raises(ValueError, match="--timeout must be a number of seconds > 0.*--n-trials alone"):
            time_budget(spec, nothing, None, T0)


def test_a_profile_budget_overrides_the_study_table(tmp_path: Path) -> None:
    path = tmp_path / "timed.toml"
    path.write_text("[study]\ntimeout_s = 900\n[params]\nlr = [0.1]\n[profiles.cpu]\ntimeout_s = 60\n")
    assert load_study_spec(path, "cpu").timeout_s == 60.0
    assert load_study_spec(path, "gpu").timeout_s == 900.0


@pytest.mark.parametrize("value", ["0", "-5", "'8 min'", "true"])
def test_a_bad_profile_budget_names_the_file_and_key(tmp_path: Path, value: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[params]\nlr = [0.1]\n[profiles.cpu]\ntimeout_s = {value}\n")
    with pytest.raises(StudyFileError, match="bad.toml.*timeout_s"):
        load_study_spec(path, "cpu")


def test_the_command_line_counts_from_the_process_start() -> None:
    before = time.time()
    started = process_started_at()
    assert started <= before and before - started < 3600  # this test process started earlier, not now
    opts = options_from_args(build_parser().parse_args(["--study", "age_cutoff", "--timeout", "120"]))
    assert opts.started_at is not None and abs(opts.started_at - started) < 1.0
    assert plan_run(opts).budget == TimeBudget(120.0, opts.started_at, "--timeout")
    # a library call without a start time counts from the call
    assert plan_run(RunOptions(study="age_cutoff", device="cpu"), now=T0).budget.started_at == T0


def test_the_refit_phase_keeps_its_share_of_the_time_budget() -> None:
    """age_cutoff's CPU [refit] keeps 60 % of a run's budget: the search stops at the other 40 %;
    --no-refit gives the search all of it, and a run without a time budget has no share to keep."""
    spec = load_study_spec("age_cutoff", "cpu")
    assert spec.refit.enabled and spec.refit.time_share == 0.6
    def plan(*flags: str):
        return plan_run(options_from_args(build_parser().parse_args(["--study", "age_cutoff", "--device", "cpu",
                                                                     *flags])))

    run = plan("--timeout", "120")
    assert run.options.refit and run.refit
    search = run.search_budget
    assert search.seconds == pytest.approx(48.0) and search.started_at == run.options.started_at
    assert "the search's 40% of 2 min" in search.source
    assert run.budget.seconds == 120.0  # the whole run's: the refit phase has what the search leaves
    assert run.without_refit().search_budget == run.budget and not run.without_refit().refit
    whole = plan("--timeout", "120", "--no-refit")
    assert not whole.refit and whole.search_budget == TimeBudget(120.0, whole.options.started_at, "--timeout")
    assert plan("--n-trials", "3").search_budget.seconds is None
    library = plan_run(RunOptions(study="age_cutoff", device="cpu"), now=T0)  # library calls: no refit
    assert not library.refit and library.search_budget.seconds == 480.0


def test_format_duration() -> None:
    assert [format_duration(s) for s in (42, 480, 492.4, 3600)] == ["42 s", "8 min", "8 min 12 s", "60 min"]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_trial_starts_only_if_it_can_reach_its_first_pruning_decision() -> None:
    clock = Clock(T0 + 400)  # 80 s left of 480
    deadline = Deadline(TimeBudget(480, T0), TrialNeeds(epochs=4, min_resource=2), clock=clock)
    assert deadline.can_start(None)  # no pace known yet
    # the pruner may judge it after 2 epochs (and the budget may cut it there: it is kept), which must fit
    assert deadline.can_start(40.0)  # 2 epochs x 40 s = 80 s
    assert not deadline.can_start(41.0)
    # without a pruner all its 4 epochs must fit
    without = Deadline(TimeBudget(480, T0), TrialNeeds(4, 2, prunes=False), clock=clock)
    assert without.can_start(20.0) and not without.can_start(21.0)
    clock.now = T0 + 480
    assert not deadline.can_start(None)
    assert Deadline(TimeBudget(None, T0), clock=clock).can_start(1e9)  # no budget, no limit


@pytest.mark.parametrize(("name", "needs"), [("age_cutoff", TrialNeeds(5, 2)), ("smoke", TrialNeeds(3, 1))])
def test_what_a_trial_needs_comes_from_the_study_file(name: str, needs: TrialNeeds) -> None:
    assert TrialNeeds.of(load_study_spec(name, "cpu")) == needs


def test_a_running_trial_is_cut_when_its_next_epoch_would_end_past_the_budget() -> None:
    clock = Clock(T0 + 450)  # 30 s left
    deadline = Deadline(TimeBudget(480, T0), clock=clock)
    assert not deadline.cut_after(3, epoch=1, epochs=4, epoch_seconds=29.0)
    assert deadline.cut_after(3, epoch=2, epochs=4, epoch_seconds=31.0)
    assert deadline.cut == {3: f"{TIME_CUT_REASON} after epoch 2 of 4"}
    assert not deadline.cut_after(5, epoch=4, epochs=4, epoch_seconds=31.0)  # its last epoch: it is done
    assert not Deadline(TimeBudget(None, T0), clock=clock).cut_after(6, 1, 4, 1e9)


def test_a_fold_group_s_time_is_its_models_on_k_minus_1_folds_of_the_people_in_rounds_of_the_processes() -> None:
    reserve = RefitReserve(TimeBudget(600, T0), folds=3, train_fraction=0.8)
    # each of 3 models: 2 epochs on 2/3 of the people, where the trial's 10 s epochs saw 0.8 of them
    assert reserve.group_seconds(EpochPace(10.0), 2) == pytest.approx(3 * 10.0 * 2 * (2 / 3) / 0.8)
    assert RefitReserve(TimeBudget(600, T0), 3, 0.8, lanes=2).group_seconds(EpochPace(10.0), 2) == pytest.approx(
        2 * 10.0 * 2 * (2 / 3) / 0.8)  # two rounds of two processes
    need = reserve.group_seconds(EpochPace(10.0), 2)  # 50 s
    fits_at = T0 + 600 - need / (1 - GROUP_SLACK)  # the share left must hold it with GROUP_SLACK to spare
    assert reserve.shortfall(EpochPace(10.0), 2, fits_at - 1) is None
    why = reserve.shortfall(EpochPace(10.0), 2, fits_at + 1)
    assert why is not None and why.startswith("at 10 s an epoch, a 3-fold group of 2-epoch models needs about 50 s of the")
    assert "the refit would have, more than the 85% a group may plan on" in why
    assert RefitReserve(TimeBudget(None, T0), 3, 0.8).shortfall(EpochPace(1e9), 9, T0) is None  # no time budget


def test_a_fold_model_s_epoch_scales_training_by_its_training_people_and_validation_by_its_held_out_ones() -> None:
    """A 3-fold model of a 0.8 / 0.2 split trains on (2/3) / 0.8 of the trial's images and holds out
    (1/3) / 0.2 of its validation images, which it validates once, after its last epoch: with 2 s of a
    10 s epoch validating, 4 epochs are 4 x 8 x 0.833 + 2 x 1.667."""
    reserve = RefitReserve(TimeBudget(600, T0), folds=3, train_fraction=0.8)
    split = EpochPace(10.0, val_seconds=2.0)
    assert split.scaled((2 / 3) / 0.8, (1 / 3) / 0.2) == pytest.approx(8 * (2 / 3) / 0.8 + 2 * (1 / 3) / 0.2)
    assert split.refit_model(4, (2 / 3) / 0.8, (1 / 3) / 0.2) == pytest.approx(4 * 8 * (2 / 3) / 0.8 + 2 * (1 / 3) / 0.2)
    assert reserve.group_seconds(split, 4) == pytest.approx(3 * 30.0)  # where a whole epoch scaled said 100 s
    assert reserve.group_seconds(split, 1) == pytest.approx(3 * 10.0)  # one epoch: its validation weighs more (25 s)
    assert EpochPace(10.0).scaled(0.5, 9.0) == 5.0  # no split recorded: the whole epoch scales by training images
    assert EpochPace(10.0).refit_model(3, 0.5, 9.0) == 15.0
    # read from a trial's attributes: the mean validation pass of its epoch records, if every one has it
    history = [{"epoch": 1, "seconds": 10.0, "val_seconds": 1.5}, {"epoch": 2, "seconds": 10.0, "val_seconds": 2.5}]
    assert EpochPace.of(TrialAttrs(seconds_per_epoch=10.0, history=history)) == EpochPace(10.0, 2.0)
    older = [{"epoch": 1, "seconds": 10.0}, {"epoch": 2, "seconds": 10.0, "val_seconds": 0.0}]
    assert EpochPace.of(TrialAttrs(seconds_per_epoch=10.0, history=older)) == EpochPace(10.0)
    assert EpochPace.of(TrialAttrs(seconds_per_epoch=10.0)) == EpochPace(10.0)
    assert EpochPace.of(TrialAttrs()) is None and EpochPace.of(TrialAttrs(seconds_per_epoch=0.0)) is None


def test_the_search_keeps_the_refit_s_share_only_while_a_fold_group_could_use_it() -> None:
    """At the search's part of the budget a trial is cut as without a refit, when the fewest folds'
    group of its epochs so far fits in the share; when it does not, the search takes the whole budget
    and the trial goes on."""
    clock = Clock(T0 + 190)  # 10 s left of the search's 200; 400 s left of the whole 600
    whole = TimeBudget(600, T0, "--timeout")

    def deadline() -> Deadline:
        return Deadline(TimeBudget(200, T0), TrialNeeds(5, 2), clock=clock, reserve=RefitReserve(whole, 3, 0.8))

    usable = deadline()  # a group of 2 epochs at 60 s: 3 x 60 x 2 x (2/3) / 0.8 = 300 s <= 0.9 x 400
    assert usable.cut_after(0, epoch=2, epochs=5, epoch_seconds=60.0)
    assert usable.took_share is None and usable.budget.seconds == 200 and usable.reserve is not None
    unusable = deadline()  # at 80 s an epoch: 400 s > 0.9 x 400
    assert not unusable.cut_after(0, epoch=2, epochs=5, epoch_seconds=80.0)
    assert unusable.budget == whole and unusable.reserve is None and not unusable.cut
    assert unusable.took_share is not None and "so the search kept the refit's share" in unusable.took_share
    # a 130 s epoch of which 20 s validate, cut after it: each fold model validates 1/3 of the people,
    # 1.67x the trial's: 3 x (110 x 0.833 + 20 x 1.667) = 375 s > 0.85 x 400, so no group could use it
    # (scaling the whole epoch by training images said 325 s)
    assert deadline().cut_after(0, epoch=1, epochs=5, epoch_seconds=130.0)
    validating = deadline()
    assert not validating.cut_after(0, epoch=1, epochs=5, epoch_seconds=130.0, val_seconds=20.0)
    assert validating.budget == whole and validating.took_share is not None
    # three 50 s epochs of which 15 s validate: validated once, 3 x (35 x 0.833 x 3 + 15 x 1.667) = 337.5 s
    # fits (the whole epochs scaled said 375 s, and took the share)
    assert not deadline().cut_after(0, epoch=3, epochs=5, epoch_seconds=50.0)
    assert deadline().cut_after(0, epoch=3, epochs=5, epoch_seconds=50.0, val_seconds=15.0)
    # and trials go on starting in it, with no check again
    assert unusable.can_start(80.0)
    clock.now = T0 + 600 - 100
    assert not unusable.cut_after(1, epoch=1, epochs=5, epoch_seconds=90.0)
    assert unusable.cut_after(1, epoch=1, epochs=5, epoch_seconds=101.0)  # the whole budget's end

    clock.now = T0 + 190
    starts = deadline()  # a new trial needs its 2 epochs (the pruner's first judgement) before the search's end
    assert not starts.can_start(60.0) and starts.took_share is None  # 300 s group fits the share: it is kept
    assert starts.can_start(80.0) and starts.budget == whole  # no group could: the search takes it
    assert not Deadline(TimeBudget(200, T0), TrialNeeds(5, 2), clock=clock).can_start(80.0)  # no reserve: as before
    # the refit trains the best trial so far first: its 5 epochs at 60 s (750 s) cannot fit, so a trial
    # that would not start at the search's end takes the share, whatever the new trial's own epochs
    after_best = deadline()
    after_best.best = (EpochPace(60.0), 5)
    assert after_best.can_start(60.0) and after_best.budget == whole
    # a trial cut at the search's end keeps the share while its own group or the best's could use it
    either = deadline()
    either.best = (EpochPace(10.0), 5)  # the best's group: 125 s
    assert either.cut_after(0, epoch=2, epochs=5, epoch_seconds=80.0) and either.reserve is not None

    # two trial processes of one run: the one that takes the share tells the other, which goes on too
    told: list[str] = []
    first, second = deadline(), deadline()
    for each in (first, second):
        each.taken_elsewhere, each.announce = (lambda: told[0] if told else None), told.append
    assert not first.cut_after(0, epoch=2, epochs=5, epoch_seconds=80.0) and len(told) == 1
    assert not second.cut_after(1, epoch=2, epochs=5, epoch_seconds=60.0)  # its own group would have fit
    assert second.budget == whole and second.took_share == told[0] and len(told) == 1


def test_a_run_with_a_refit_phase_and_a_time_budget_plans_the_reserve() -> None:
    plan = plan_run(options_from_args(build_parser().parse_args(
        ["--study", "age_cutoff", "--device", "cpu", "--timeout", "600", "--workers", "2"])), workers=2)
    assert plan.reserve == RefitReserve(plan.budget, folds=3, train_fraction=0.8, lanes=2)  # cpu: folds 3..5
    assert plan.without_refit().reserve is None
    for flags in (["--no-refit"], ["--n-trials", "3"]):  # no share to keep, or no time budget
        assert plan_run(options_from_args(build_parser().parse_args(
            ["--study", "age_cutoff", "--device", "cpu", *flags]))).reserve is None


def _add(study: optuna.Study, state: TrialState, start: float, seconds: float, epochs: int,
         value: float | None = None, reason: str | None = None, attrs: dict[str, str] | None = None) -> None:
    """A trial that ran from ``start`` for ``seconds`` and reported ``epochs`` epochs."""
    study.add_trial(FrozenTrial(
        number=0, trial_id=0, state=state, value=value,
        datetime_start=datetime.datetime.fromtimestamp(start),
        datetime_complete=datetime.datetime.fromtimestamp(start + seconds),
        params={"lr": 0.01}, distributions={"lr": FloatDistribution(1e-3, 1e-1)},
        user_attrs=({"failure_reason": reason} if reason else {}) | (attrs or {}), system_attrs={},
        intermediate_values={e: 0.1 * e for e in range(1, epochs + 1)},
    ))


def test_the_refit_s_first_group_is_the_best_complete_trial_s_pace_and_epochs() -> None:
    from search.engine.progress import best_pace

    study = optuna.create_study(direction="maximize")
    assert best_pace(study.trials) is None
    _add(study, TrialState.COMPLETE, T0, 100, 2, value=0.5, attrs=TrialAttrs.values(seconds_per_epoch=50.0, epochs_run=2))
    history = [{"epoch": e, "seconds": 25.0, "val_seconds": 5.0} for e in range(1, 5)]
    _add(study, TrialState.COMPLETE, T0, 100, 4, value=0.7,
         attrs=TrialAttrs.values(seconds_per_epoch=25.0, epochs_run=4, history=history))
    _add(study, TrialState.PRUNED, T0, 100, 1, attrs=TrialAttrs.values(seconds_per_epoch=9.0, epochs_run=1))
    assert best_pace(study.trials) == (EpochPace(25.0, 5.0), 4)


def test_the_pace_is_seconds_per_epoch_of_this_runs_trials() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.COMPLETE, T0 - 1000, 100, 4, value=0.5)  # an earlier run: 25 s/epoch
    assert trial_pace(study.trials, since=T0) == 25.0  # nothing in this run yet: the earlier one
    _add(study, TrialState.COMPLETE, T0 + 10, 40, 4, value=0.6)  # 10 s/epoch
    _add(study, TrialState.PRUNED, T0 + 60, 24, 2)  # 12 s/epoch
    assert trial_pace(study.trials, since=T0) == 11.0
    assert trial_pace([], since=T0) is None


def test_the_end_of_a_run_by_time_says_how_many_trials_fit_and_how_to_resume() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.COMPLETE, T0 - 1000, 100, 4, value=0.5)  # an earlier run's
    _add(study, TrialState.COMPLETE, T0 + 60, 120, 4, value=0.8)
    _add(study, TrialState.PRUNED, T0 + 190, 60, 2)
    _add(study, TrialState.COMPLETE, T0 + 260, 120, 4, value=0.7)
    _add(study, TrialState.FAIL, T0 + 390, 80, 2, reason=f"{TIME_CUT_REASON} after epoch 2 of 4")
    assert requeue(study, study.trials[-1])
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].params == study.trials[4].params and not waiting[0].user_attrs
    budget = TimeBudget(480, T0, "age_cutoff.toml, cpu profile")

    outcome = run_outcome(study, budget, n_trials=20, needs=TrialNeeds(4, 2), now=T0 + 475)
    assert (outcome.finished, outcome.complete, outcome.pruned, outcome.by_time) == (4, 2, 1, True)
    message = outcome.message()
    assert message is not None
    assert message.startswith("Time budget reached: 3 trials fit in this run's 8 min "
                              "(age_cutoff.toml, cpu profile, counted from the command's start): 2 complete, 1 pruned.")
    assert "Trial 4 was stopped at the time budget after epoch 2 of 4; it runs first when the study resumes." in message
    assert "The study has 4 of its 20 trials" in message
    assert "run the same command again: it resumes the study" in message
    assert "--n-trials 20 (without --timeout)" in message

    # a trial cut a second time is not queued again
    assert not requeue(study, study.get_trials(states=(TrialState.WAITING,))[0])


def test_no_message_when_the_trial_budget_ended_the_run_or_there_was_no_time_budget() -> None:
    study = optuna.create_study(direction="maximize")
    for k in range(3):
        _add(study, TrialState.COMPLETE, T0 + 10 + 60 * k, 50, 4, value=0.5)
    assert run_outcome(study, TimeBudget(480, T0, "x"), n_trials=3, now=T0 + 479).message() is None
    assert run_outcome(study, TimeBudget(None, T0), n_trials=20, now=T0 + 479).message() is None
    # time left for another trial: not ended by time (it stopped for another reason, logged where it happened)
    assert run_outcome(study, TimeBudget(480, T0, "x"), n_trials=20, now=T0 + 200).message() is None


def test_a_run_that_spent_its_budget_before_any_trial_says_so() -> None:
    study = optuna.create_study(direction="maximize")
    message = run_outcome(study, TimeBudget(60, T0, "--timeout"), n_trials=5, now=T0 + 61).message()
    assert message is not None and "0 trials fit in this run's 1 min" in message
    assert "before a trial could start" in message and "The study has 0 of its 5 trials" in message


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


def test_a_trial_running_at_the_time_budget_is_stopped_and_kept_as_a_candidate(
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
    [cut] = study.trials
    epochs = len(cut.intermediate_values)
    assert cut.state == TrialState.COMPLETE and 1 <= epochs < 1000
    assert TrialAttrs.read(cut).cut_by_budget == f"stopped at the time budget after epoch {epochs} of 1000"
    assert cut.user_attrs["failure_reason"] is None and cut.user_attrs["status"] == "complete"
    best = max(cut.intermediate_values, key=lambda e: cut.intermediate_values[e])
    assert cut.value == cut.intermediate_values[best] and cut.user_attrs["best_epoch"] == best
    assert took < 8 + 20
    assert "Time budget reached: 1 trial fit in this run's 8 s (--timeout, counted from the command's start)" in out
    assert f"Trial 0 was stopped at the time budget after epoch {epochs} of 1000; it is kept as a complete trial" in out
    assert not _states(study, TrialState.WAITING, TrialState.RUNNING, TrialState.FAIL), "nothing queued again"

    # its best epoch is on disk and a candidate for the ensemble and the export
    store = TrialStore(runs, "long")
    assert (store.trial_dir(0) / "weights.safetensors").is_file()
    assert [c.name for c in load_candidates("long", f"sqlite:///{runs / 'studies.db'}", runs).candidates] == ["long#0"]


def test_a_search_whose_trial_no_fold_group_could_follow_takes_the_refit_s_share(
    tiny_bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial of 1000 epochs with a refit phase keeping 75 % of 8 s, on 20 folds: no 20-fold group of
    even one epoch fits in 6 s, so the trial is not cut at the search's 2 s but runs to the whole
    budget; the summary counts the whole budget and the refit phase says why it trains nothing."""
    toml = _smoke_variant(tmp_path / "share.toml", ("epochs = 3", "epochs = 1000"), ("patience = 3", "patience = 1000"),
                          ('name = "successive_halving"', 'name = "none"'), ("n_trials = 8", "n_trials = 2"))
    toml.write_text(toml.read_text() + "\n[refit]\nenabled = true\ntop = 1\nfolds = 20\ntime_share = 0.75\n")
    runs = tmp_path / "runs"
    started = time.time()
    opts = RunOptions(study=str(toml), data=tiny_bench, workdir=runs, device="cpu", timeout_s=8, started_at=started,
                      refit=True)
    assert execute(opts) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="share", storage=f"sqlite:///{runs / 'studies.db'}")
    [trial] = study.trials
    assert trial.state == TrialState.COMPLETE and TrialAttrs.read(trial).cut_by_budget
    assert trial.datetime_complete.timestamp() - started > 2 + 1, "not cut at the search's 2 s"
    why = search_took_share(study, plan_run(opts).budget)
    assert why is not None and why.startswith("at ") and "a 20-fold group of" in why
    assert "Time budget reached: 1 trial fit in this run's 8 s (--timeout, counted" in out
    assert f"refit: none in this run: {why}; the export ships the search's best." in out
    assert "--trials 0 --folds 20" in out and "no fold group fits" not in out
    assert not list(runs.rglob("folds-*")), "no fold model trained"


def test_a_trial_kept_at_the_time_budget_is_named_in_the_message_and_not_queued() -> None:
    study = optuna.create_study(direction="maximize")
    _add(study, TrialState.COMPLETE, T0 + 60, 120, 4, value=0.8)
    _add(study, TrialState.COMPLETE, T0 + 190, 90, 3, value=0.7, attrs=TrialAttrs.values(cut_by_budget=f"{TIME_CUT_REASON} after epoch 3 of 4"))
    outcome = run_outcome(study, TimeBudget(300, T0, "--timeout"), n_trials=20, needs=TrialNeeds(4, 2), now=T0 + 290)
    assert outcome.by_time and outcome.kept == ((1, f"{TIME_CUT_REASON} after epoch 3 of 4"),) and not outcome.cut
    message = outcome.message()
    assert message is not None and "2 trials fit in this run's 5 min (--timeout, counted" in message
    assert "Trial 1 was stopped at the time budget after epoch 3 of 4; it is kept as a complete trial, scored by " \
           "its best epoch." in message


def test_a_refit_budget_counts_down_from_its_creation_and_fits_what_the_time_left_covers() -> None:
    now = [100.0]
    budget = RefitBudget(60.0, clock=lambda: now[0])
    assert budget.left() == 60.0 and budget.fits(60.0) and not budget.fits(60.5)
    now[0] = 130.0
    assert budget.left() == 30.0 and not budget.fits(31.0)
    endless = RefitBudget(None, clock=lambda: now[0])
    assert endless.left() == float("inf") and endless.fits(1e12)


def test_a_local_worker_s_plan_is_the_launcher_s_with_its_own_device_index_and_log_lines(tmp_path: Path) -> None:
    plan = plan_run(RunOptions(study="smoke", device="auto", profile="cpu", workdir=tmp_path, worker_index=5),
                    workers=2)
    child = plan.for_worker(1, "cpu")
    assert (child.options.device, child.options.worker_index, child.options.progress) == ("cpu", 6, "log")
    assert child.spec is plan.spec and child.budget == plan.budget and child.storage_url == plan.storage_url
    assert child.workers == 1 and plan.name == "smoke"
    assert plan.storage_url == f"sqlite:///{tmp_path / 'studies.db'}"  # the default, resolved once
