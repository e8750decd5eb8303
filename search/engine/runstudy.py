"""Running a study in this process: open or resume it, run trials until its budget of finished
trials or its time budget is reached (search/engine/trialbudget.py, search/engine/budget.py), and summarise.

``python -m search.run`` calls :func:`run_study` and :func:`print_summary` with the run's plan
(``RunPlan``, search/engine/options.py); so does each worker process of the local launcher
(search/engine/launcher.py) and every benchmark that runs a study.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.storage import records
from search.engine.budget import TrialNeeds, run_outcome, search_took_share, trial_pace
from search.engine.checks import GaveUp
from search.engine.nearcopy import NOT_RUN
from search.engine.objective import Objective, TrialFailed
from search.engine.options import RunOptions, RunPlan, plan_run
from search.engine.prepare import open_study
from search.engine.progress import best_pace, run_watch
from search.storage.reaper import reap_orphans, worker_tag
from search.storage.trial_attrs import TrialAttrs
from search.storage.backends import dashboard_command
from search.engine.track import TrackCallback, open_tracker, view_command
from search.engine.trialbudget import StopAtBudget, count_trials, fail_stale
from search.storage.urls import PASSWORD_NOTE, has_password

log = logging.getLogger("search")


def run_study(plan: RunPlan | RunOptions) -> optuna.Study:
    """Run trials until the study's budget of finished trials is reached, or its time budget
    (search/engine/budget.py). ``plan``: the run's plan, resolved once by the command; options
    alone (a library call, a benchmark) are resolved here, once, by ``plan_run``."""
    plan = plan if isinstance(plan, RunPlan) else plan_run(plan)
    opts, spec = plan.options, plan.spec
    study, study_data = open_study(
        spec, plan.storage_url, opts.workdir, opts.data, opts.relabel, opts.name, opts.worker_index,
        plan.storage_settings,
    )
    reap_orphans(study)  # trials left RUNNING by a dead local worker (storages without heartbeat)
    remaining = spec.n_trials - count_trials(study)
    if remaining <= 0:
        log.info("study %s already has %d finished trials (budget %d); pass --n-trials to run more",
                 study.study_name, count_trials(study), spec.n_trials)
        return study
    fail_stale(study)  # a dead remote worker's trial is not on its way
    running = count_trials(study, (TrialState.RUNNING,))
    if running >= remaining:  # other workers' trials take the rest: starting one would only record a FAIL
        log.info("study %s: the budget of %d trials is taken by %d finished and %d running trials; nothing to "
                 "start (pass --n-trials to run more)", study.study_name, spec.n_trials, count_trials(study), running)
        return study
    watch = run_watch(study, spec.n_trials, plan.search_budget, TrialNeeds.of(spec), opts.progress,
                      reserve=plan.reserve)
    objective = worker_objective(
        Objective(spec, study_data, opts.workdir, device=opts.device, augment_on=opts.augment_on, watch=watch),
        spec.n_trials,
    )
    if plan.reserve is not None:  # a resumed run: its best trial so far is the refit's first group
        trials = study.get_trials(deepcopy=False)
        watch.deadline.best = best_pace(trials)
        if (watch.deadline.left() or 0.0) <= 0:  # the search's part is spent already: the share, if no group fits
            watch.deadline.can_start(trial_pace(trials))
    left = watch.deadline.left()
    log.info("study %s (%s profile): running up to %d more trials%s", study.study_name, spec.profile, remaining,
             "" if left is None else f" for up to {left:.0f} s" if left > 0 else ": none, the time budget is spent")
    trial_budget = StopAtBudget(spec.n_trials)
    callbacks = [trial_budget, _note, watch]
    if opts.track:
        callbacks.append(TrackCallback(open_tracker(opts.track, opts.workdir, study.study_name, opts.track_to)))
    # Optuna's own timeout only ends the loop between trials. While the search may still take the
    # refit's share, it is the whole budget's: the watch stops the loop at the search's part.
    reserve = watch.deadline.reserve
    timeout = left if reserve is None else reserve.whole.left(time.time())
    with watch.progress.showing(verbose=log.isEnabledFor(logging.DEBUG)):
        if left is None or left > 0:
            study.optimize(
                objective,
                timeout=timeout,
                callbacks=callbacks,
                catch=(TrialFailed,),
            )
    if trial_budget.gave_up:
        raise GaveUp(f"study {study.study_name} stopped: {trial_budget.failures} trials failed; see their "
                     "failure_reason in the dashboard, fix the cause, then run the same command to resume.")
    return study


def worker_objective(
    objective: Callable[[optuna.Trial], float], n_trials: int | None = None
) -> Callable[[optuna.Trial], float]:
    """The objective, recording this process as the trial's ``worker`` first, and with a budget
    of ``n_trials`` finished trials, skipping a trial that would overshoot it.

    Workers decide to start another trial independently, so two that finish at the same moment
    can both start one when the budget has room for only one. Trials are numbered in the order
    they are created, so each new trial counts the finished trials and the running ones created
    before it: a trial beyond the budget ends at once as FAIL, saying why, and the worker stops.
    """
    tag = worker_tag()

    def run(trial: optuna.Trial) -> float:
        TrialAttrs.set(trial, worker=tag)
        if n_trials is not None:
            study = trial.study
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            ahead = sum(1 for t in running if t.number < trial.number)
            if count_trials(study) + ahead >= n_trials:
                reason = f"{NOT_RUN} the budget of {n_trials} trials is taken by finished and running trials"
                TrialAttrs.set(trial, failure_reason=reason)
                log.info("trial %d %s", trial.number, reason)
                study.stop()
                raise TrialFailed(reason)
        return objective(trial)

    return run


def _note(study: optuna.Study, trial: FrozenTrial) -> None:
    records.save_study_note(study)


def print_summary(study: optuna.Study, plan: RunPlan) -> None:
    print()
    print(records.study_note(study, top=10))
    for line in next_commands(plan):
        print(line)
    ended = time_budget_message(study, plan)  # the time budget ended the run: how many trials fit, how to run more
    if ended:
        print()
        print(ended)


def time_budget_message(study: optuna.Study, plan: RunPlan) -> str | None:
    """What ``print_summary`` adds when the time budget ended the run (None otherwise or without a start time)."""
    if plan.options.started_at is None:
        return None
    budget = plan.budget if search_took_share(study, plan.budget) else plan.search_budget
    return run_outcome(study, budget, plan.spec.n_trials, TrialNeeds.of(plan.spec)).message()


def next_commands(plan: RunPlan) -> list[str]:
    """The "Next:" lines: shell-quoted, the storage URL without its password (and where it goes)."""
    opts, name, study = plan.options, plan.name, plan.study_args()
    lines = [
        "Next:",
        f"  dashboard: {dashboard_command(plan.storage_url, opts.workdir)}",
        f"  report:    python -m search.report {study}",
        f"  ensemble:  python -m search.ensemble {study}",
        f"  export:    python -m search.export {study} --out {shlex.quote(f'exports/{name}')}",
    ]
    if opts.track:
        lines.append(f"  tracker:   {view_command(opts.track, opts.workdir, opts.track_to)}")
    if has_password(plan.storage_url):
        lines.append(f"  ({PASSWORD_NOTE})")
    return lines
