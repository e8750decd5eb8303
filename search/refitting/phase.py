"""The refit phase of ``python -m search.run``: after the search, fold groups of its best trials,
inside the same time budget.

A study file's ``[refit]`` table turns it on (``enabled``) and says which trials (the ``top`` best
complete ones), on how many person folds (``folds``, else ``[split] folds``; with ``max_folds``, the
most folds from ``max_folds`` down to ``folds`` whose group fits the time left, ``choose_folds``) and
what share of the run's time budget the phase keeps (``time_share``: the search stops at
``1 - time_share`` of it, search/engine/budget.py). The phase has whatever time the search left;
without a time budget it trains every fold group. A group starts only if its missing fold models
fit in the time left at the trial's own pace, so the phase does not start what it cannot finish; a
fold model the budget still cuts is kept at the epoch it reached (its group ships; the next run with
the time trains it again). A run with several trial processes trains as many fold models at once
(search/refitting/parallel.py), so its groups fit in a share of the time. The fold models are kept
as they finish, so a killed phase, or one that ran out of time, resumes when the same command runs again: only the missing (or cut) models train.
When no group fits, one line says so and the search takes the time back (the run ends as the
search left it: ``python -m search.export`` ships the search's best); when the search already took
the share because its pace showed no group could fit (search/engine/budget.py, ``RefitReserve``), the
phase says so and trains nothing; when the groups are done and
a new trial still fits in the time left, the search goes on in it too, so no budget is left idle.
``--no-refit`` (or ``enabled = false``) skips the phase; ``python -m search.refit`` refits by
hand. Everything the phase needs (the study
file's [refit] table, the time budget, storage, device, processes) comes from the run's plan
(``RunPlan``, search/engine/options.py); it reads no study file.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable
from typing import TextIO

from optuna.trial import FrozenTrial

from search.engine.budget import (
    GROUP_SLACK,
    Deadline,
    RefitBudget,
    TrialNeeds,
    format_duration,
    search_took_share,
    side_by_side,
    trial_pace,
)
from search.engine.options import RunPlan
from search.refitting.parallel import refit_in_processes
from search.refitting.progress import refit_progress
from search.refitting.store import RefitError
from search.refitting.train import (
    DEFAULT_EPOCHS,
    RefitContext,
    Work,
    choose_trials,
    fold_work,
    open_refit,
    refit_folds,
    refit_table as table,
)

log = logging.getLogger("search.refit")


def refit_phase(
    plan: RunPlan,
    verbose: bool = False,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.time,
    search_on: Callable[[], int] | None = None,
) -> int:
    """Refit the study's best trials on person folds in the time the run's plan has left; the exit
    code (0 also when nothing fit: the search's best ships; 130 when interrupted). As many
    processes as the plan's ``workers`` (the search's local trial processes) train the fold models
    at once (search/refitting/parallel.py). ``search_on``: when no fold group fits, the time left
    goes back to the search through it (its exit code is returned), rather than idling."""
    if not plan.refit:
        return 0
    left = plan.budget.left(clock())
    name = plan.name
    k = plan.spec.refit_folds
    try:
        ctx = open_refit(name, plan.storage_url, plan.workdir)
        trials = choose_trials(ctx.study, top=plan.spec.refit.top)
        if not trials:
            print("\nrefit: no complete trial to refit; the export ships what the search has.")
            return 0
        took = search_took_share(ctx.study, plan.budget)
        if took:  # the search ran to the end of the budget: no group could have used the share
            numbers = " ".join(str(t.number) for t in trials)
            print(f"\nrefit: none in this run: {took}; the export ships the search's best. Refit without a "
                  f"time limit: python -m search.refit {plan.study_args()} --trials {numbers} --folds {k}")
            return 0
        people = ctx.data.data.images["person"].nunique()
        choices = [c for c in plan.spec.refit_fold_choices if c <= people] or [plan.spec.refit_folds]
        k, why = choose_folds({c: fold_work(ctx, trials[0], c) for c in choices}, left, max(1, plan.workers))
        if len(choices) > 1 and why:
            print(f"\nrefit: {k} person folds of {choices[-1]}-{choices[0]} ([refit] folds to max_folds): "
                  f"{why}")
        plans = [(t, fold_work(ctx, t, k)) for t in trials]
        code = _run(ctx, plans, k, left, plan, stream, search_on is not None)
    except KeyboardInterrupt:
        log.warning("interrupted: the fold models done are kept; run the same command to train the rest")
        return 130
    except (RefitError, ValueError, FileNotFoundError) as exc:
        log.error("refit: %s", exc, exc_info=verbose)
        return 2
    if code is None:  # no fold group fits
        return search_on() if search_on else 0
    if code == 0 and search_on is not None and _trial_fits(ctx, plan, clock()):
        print(f"\nrefit: done with {format_duration(plan.budget.left(clock()) or 0.0)} of the time budget left; "
              "the search goes on in it (its new trials are candidates too).")
        return search_on()
    return code


def choose_folds(works: dict[int, Work], left: float | None, lanes: int) -> tuple[int, str]:
    """K of the run's fold groups and why, from what the best trial's group still needs at each K
    (``works``, most folds first): a group an earlier run began, if its missing models fit (a resumed
    phase finishes what it started); else the most folds whose group fits in ``left`` seconds (the
    most of all without a time budget): each fold model trains on more people and the vote has more
    members (benchmarks/README.md, "More folds, not more groups"); else the fewest, with no reason (the
    phase then says that no group fits). A group must fit with ``GROUP_SLACK`` of the time to spare
    (search/engine/budget.py): a group the budget cuts short is not shipped at all."""
    fewest = list(works)[-1]

    def fits_in(k: int) -> bool:
        need = side_by_side(works[k].seconds, works[k].models, lanes)
        return left is None or need <= left * (1.0 - GROUP_SLACK)

    fits = [k for k in works if fits_in(k)]
    begun = [k for k in fits if works[k].models < k]
    if begun:
        return begun[0], "the group an earlier run began"
    if fits:
        return fits[0], "no time budget" if left is None else "the most whose group fits the time left"
    return fewest, ""


def _trial_fits(ctx: RefitContext, plan: RunPlan, now: float) -> bool:
    """Whether a new trial still fits in what the refit left of the run's time budget, at the run's
    trial pace."""
    if plan.budget.seconds is None:
        return False
    trials = ctx.study.get_trials(deepcopy=False)
    pace = trial_pace(trials, plan.budget.started_at)
    deadline = Deadline(plan.budget, TrialNeeds.of(plan.spec), clock=lambda: now)
    return pace is not None and deadline.can_start(pace)


def _run(
    ctx: RefitContext,
    plans: list[tuple[FrozenTrial, Work]],
    k: int,
    left: float | None,
    plan: RunPlan,
    stream: TextIO | None,
    search_goes_on: bool = False,
) -> int | None:
    """Train the fold groups that fit in ``left`` seconds, best trial first; the exit code, or None
    (after one line saying so) when not even the best trial's group fits."""
    budget = RefitBudget(left)
    chosen = []
    spent = 0.0
    lanes = max(1, plan.workers)  # processes training fold models side by side
    models = 0
    for trial, work in plans:  # best first: a group starts only if its missing models fit, with room
        if left is None or side_by_side(spent + work.seconds, models + work.models, lanes) <= left * (1 - GROUP_SLACK):
            chosen.append((trial, work))
            spent += work.seconds
            models += work.models
    hand = _by_hand(plan, plans, k)
    if not chosen:
        trial, work = plans[0]
        time_left, need = format_duration(max(0.0, left or 0.0)), format_duration(work.seconds)
        print(
            f"\nrefit: no fold group fits in the {time_left} left of the time budget (trial {trial.number}'s "
            f"{work.models} missing fold model(s) need about {need}); "
            + ("the search goes on in that time instead, " if search_goes_on else "")
            + f"and the export ships the search's best. Refit without a time limit: {hand}"
        )
        return None
    todo = [w for _, w in chosen]
    processes = min(lanes, models)
    expected = side_by_side(spent, models, processes)
    progress = refit_progress(models, sum(w.epochs for w in todo), expected, stream)
    limit = "" if left is None else f" in the {format_duration(left)} left of the time budget"
    side = f" in {processes} processes" if processes > 1 else ""
    print(
        f"\nrefit: {len(chosen)} trial(s) on {k} person folds{limit} "
        f"(about {format_duration(expected)} at the trials' pace; {models} model(s) to train{side})"
    )
    if processes > 1:
        reports = refit_in_processes(ctx, plan, [t for t, _ in chosen], k, left, processes)
    else:
        reports = []
        with progress.showing():
            for trial, _ in chosen:
                reports.append(refit_folds(ctx, trial, k, DEFAULT_EPOCHS, budget, plan.options.device,
                                           plan.options.augment_on, progress))
    print(table(reports))
    unfinished = [r["trial"] for r in reports if not r["complete"]]
    if unfinished:
        print(
            f"refit: the time budget ended before the fold groups of trial(s) {unfinished} were complete; "
            "the same command trains only their missing models, after its search. Or now, without a time "
            f"limit: {hand}"
        )
    shortened = [r["trial"] for r in reports if r.get("cut_folds")]
    if shortened:
        print(f"refit: the time budget stopped fold model(s) of trial(s) {shortened} before their last epoch; "
              "they are kept (the table says after which epoch), so their groups ship; the same command trains "
              "them again after its search, when they fit.")
    skipped = [t.number for t, _ in plans if all(t.number != c.number for c, _ in chosen)]
    if skipped:
        print(f"refit: trial(s) {skipped} did not fit in the time left; refit them by hand: {hand}")
    print(f"Next: python -m search.export {plan.study_args()} --out {shlex.quote(f'exports/{plan.name}')} "
          "ships the best candidate set, fold groups included (python -m search.ensemble shows why)")
    return 0


def _by_hand(plan: RunPlan, plans: list[tuple[FrozenTrial, Work]], k: int) -> str:
    numbers = " ".join(str(t.number) for t, _ in plans)
    return f"python -m search.refit {plan.study_args()} --trials {numbers} --folds {k}"
