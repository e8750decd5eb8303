"""A run's time budget: how long ``python -m search.run`` may take, counted from the command's start.

A study file's CPU profile carries one (``[profiles.cpu] timeout_s``), so that the demo ends in
about that time on any machine, however long its epochs take there; the bench generation and
the image cache, which the first run builds, come out of it. Which budget a run gets:

    (nothing)            the study file's (its profile's) timeout_s, if it has one, and its trials
    --timeout S          S seconds (> 0), and the study file's trials
    --n-trials N         N trials and no time limit: asked for N trials, you get them
    both                 whichever ends first

Within the time budget:

- a trial starts only if the time left covers the epochs it needs, at the pace of the run's recent
  trials: those its pruner gives every trial before judging it (``[pruner] min_resource``), or all
  of them without a pruner (``none``). A trial that cannot get that far would be stopped before it
  told the study anything comparable; one that gets that far and is then stopped is kept (below), so
  the last minutes of a budget still add a candidate (issue 25: a 2-core demo left 70-80 s idle
  because its 6th trial needed all 5 epochs while fewer than ``min_complete`` trials were complete);
- a running trial is stopped after an epoch when the next epoch, at that trial's pace, would end
  past the budget. It is kept: recorded COMPLETE with its best epoch's macro-F1 and checkpoint, a
  candidate for the ensemble and the export like any other, its ``cut_by_budget`` attribute saying
  "stopped at the time budget after epoch k of n". (A trial stopped with nothing kept would be
  recorded FAIL and queued once more with the same parameters, for the next run to start with.)

A run thus ends within one epoch's misestimate of its budget, not a whole trial past it. The same
command resumes the study with a new budget until the study's trials are done.

When a ``[refit]`` phase follows the search, the search stops at its part of the budget and the
refit's share is kept for fold groups (``RefitReserve``), but only while a group could use it: when
the search's pace shows that not even the fewest folds' group could finish in the share, the search
takes the whole budget at once (recorded in the study, ``search_took_share``), rather than cutting its
trials short for a share the refit phase would hand back unused.

The refit's models have theirs too (``RefitBudget``): what is left of the run's budget for the
refit phase, or ``python -m search.refit --timeout``.
"""

from __future__ import annotations

import copy
import datetime
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.storage.backends import RetryCallback, StorageSettings
from search.engine.trialbudget import FINISHED
from search.storage.trial_attrs import TrialAttrs

if TYPE_CHECKING:
    from search.studyfile.parse import StudySpec

TIME_CUT_REASON = "stopped at the time budget"  # how a cut trial's reason starts
PACE_TRIALS = 5  # the pace of a run: its last this-many ended trials
# Share of the time left a fold group must leave over to start: a group the budget cuts short ships
# with its last model stopped early (search/refitting/train.py keeps it), a weaker group. On real
# faces groups ran -1 % to +13 % over plan at 3x (lite0 and lite2, 8 groups, planned at 65-82 % of the
# time left) and +19 % at 1x (lite2, planned at 88 %, its third model cut): benchmarks/README.md,
# "The refit's share, kept only when a group can use it".
# Those plans scaled the whole epoch by training images; since ``EpochPace`` they scale validation
# by the held-out images apart (a 3-fold model validates 1.67x the trial's people), which explains
# part of the overrun, but the margin stays until runs at the new plan measure it.
# The refit phase (search/refitting/phase.py) and the search's reserve for it (``RefitReserve``)
# apply the same margin, for any K.
GROUP_SLACK = 0.15
TOOK_SHARE_ATTR = "search_took_refit_share"  # study user attr: {"run_started_at": s, "why": text}

log = logging.getLogger("search")


def process_started_at() -> float:
    """When this process started (seconds since the epoch): the command's start, imports included.

    Read from /proc on Linux; elsewhere, or for a process older than an hour (a long-lived
    interpreter calling ``main``), now.
    """
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(after_name[19])  # field 22 of the line: start time in clock ticks since boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()
    return time.time() - age if 0.0 <= age < 3600.0 else time.time()


def format_duration(seconds: float) -> str:
    """``480`` -> ``8 min``, ``492.4`` -> ``8 min 12 s``, ``42`` -> ``42 s``."""
    whole = max(0, round(seconds))
    minutes, secs = divmod(whole, 60)
    if not minutes:
        return f"{secs} s"
    return f"{minutes} min" if not secs else f"{minutes} min {secs} s"


@dataclass(frozen=True)
class TimeBudget:
    """Seconds a run may take from ``started_at`` (time.time() of the command's start); None: no limit."""

    seconds: float | None = None
    started_at: float = 0.0
    source: str = ""  # where the figure came from, for messages: "--timeout" or the study file

    @property
    def deadline(self) -> float | None:
        return None if self.seconds is None else self.started_at + self.seconds

    def left(self, now: float) -> float | None:
        deadline = self.deadline
        return None if deadline is None else deadline - now


def time_budget(
    spec: StudySpec, timeout_s: float | None, n_trials: int | None, started_at: float
) -> TimeBudget:
    """The budget a run gets from its study file and flags (see the module docstring)."""
    if timeout_s is not None:
        if not timeout_s > 0:
            raise ValueError(f"--timeout must be a number of seconds > 0 but got {timeout_s}; "
                             "to run without a time limit, give --n-trials alone.")
        return TimeBudget(timeout_s, started_at, "--timeout")
    if n_trials is not None or spec.timeout_s is None:
        return TimeBudget(None, started_at)
    return TimeBudget(float(spec.timeout_s), started_at, f"{spec.path.name}, {spec.profile} profile")


def search_part(budget: TimeBudget, time_share: float) -> TimeBudget:
    """The search's part of a run's time budget when the study file's ``[refit]`` phase follows it:
    ``1 - time_share`` of it (the refit phase gets what the search leaves)."""
    if budget.seconds is None:
        return budget
    share = 1.0 - time_share
    return TimeBudget(budget.seconds * share, budget.started_at,
                      f"{budget.source}: the search's {share:.0%} of {format_duration(budget.seconds)}, "
                      "the rest is the fold refit's")


def side_by_side(seconds: float, models: int, lanes: int) -> float:
    """Wall time of ``models`` fold models taking ``seconds`` in all, in ``lanes`` processes: rounds
    of ``lanes`` models at a time, each round as long as an average model."""
    if models <= 0:
        return 0.0
    return math.ceil(models / max(1, lanes)) * seconds / models


@dataclass(frozen=True)
class EpochPace:
    """A trial's wall time per epoch (``seconds``, set-up not included) and of that its validation
    pass (``val_seconds``), so that a refit model's epoch scales its training by the images it trains
    on and its validation by the images it holds out: a 3-fold model of a 400 + 100 people split
    trains on 0.83x the trial's images but validates 1.67x as many. ``val_seconds`` 0.0: the trial
    records no split (before each epoch record kept one), and the whole epoch scales by training images."""

    seconds: float
    val_seconds: float = 0.0

    @classmethod
    def of(cls, attrs: TrialAttrs) -> EpochPace | None:
        """The pace a trial's attributes record; None when they record none."""
        if not attrs.seconds_per_epoch or attrs.seconds_per_epoch <= 0:
            return None
        seconds = float(attrs.seconds_per_epoch)
        vals = [r.get("val_seconds") for r in attrs.history if isinstance(r, dict)]
        if not vals or not all(isinstance(v, (int, float)) and 0 < v < seconds for v in vals):
            return cls(seconds)
        return cls(seconds, sum(vals) / len(vals))

    def scaled(self, trained: float, validated: float) -> float:
        """Seconds of an epoch on ``trained`` times the trial's training images, validated on
        ``validated`` times its validation images."""
        if self.val_seconds <= 0.0:
            return self.seconds * trained
        return (self.seconds - self.val_seconds) * trained + self.val_seconds * validated

    def refit_model(self, epochs: int, trained: float, validated: float) -> float:
        """Seconds of a refit model: ``epochs`` epochs on ``trained`` times the trial's training
        images and one validation pass, of its last epoch, on ``validated`` times its validation
        images (runners.fit with ``validate_every_epoch=False``). Without a recorded split every epoch
        counts whole, as the trial's did."""
        return epochs * self.scaled(trained, 0.0) + self.scaled(0.0, validated)


@dataclass(frozen=True)
class RefitReserve:
    """The refit phase's share of a run's time budget, as the search sees it (module docstring).

    A fold group of a trial that ran E epochs at a pace (``EpochPace``) trains ``folds`` models of E
    epochs, each on (K-1)/K of the people where the trial trained on ``train_fraction`` of them, and
    validating its last epoch on the 1/K it holds out where the trial validated on the rest: the estimate of
    search/refitting/train.py's ``fold_work``, with all folds missing.
    """

    whole: TimeBudget  # the run's whole budget: the search's, once the share is taken
    folds: int  # the fewest folds a group may have
    train_fraction: float  # 1 - [split] val_fraction
    lanes: int = 1  # processes training fold models side by side

    def group_seconds(self, pace: EpochPace, epochs: int) -> float:
        """Wall time of the fewest folds' group of a trial that ran ``epochs`` at ``pace``."""
        k = self.folds
        val_fraction = 1.0 - self.train_fraction
        held = (1.0 / k) / val_fraction if val_fraction > 0 else 0.0
        per_model = pace.refit_model(epochs, (k - 1) / k / self.train_fraction, held)
        return side_by_side(per_model * k, k, self.lanes)

    def shortfall(self, pace: EpochPace, epochs: int, now: float) -> str | None:
        """Why no group could use the share if the search ended ``now``; None when one could."""
        left = self.whole.left(now)
        if left is None:
            return None
        need = self.group_seconds(pace, epochs)
        if need <= left * (1.0 - GROUP_SLACK):
            return None
        return (f"at {pace.seconds:.0f} s an epoch, a {self.folds}-fold group of {epochs}-epoch models needs "
                f"about {format_duration(need)} of the {format_duration(max(0.0, left))} the refit would have, "
                f"more than the {1.0 - GROUP_SLACK:.0%} a group may plan on, so the search kept the refit's "
                "share of the time budget")


def search_took_share(study: optuna.Study, budget: TimeBudget) -> str | None:
    """Why the search of the run that started at ``budget.started_at`` took the refit's share of its
    time budget (``RefitReserve``), as its watch recorded in ``study``; None when it did not."""
    took = study.user_attrs.get(TOOK_SHARE_ATTR)
    if isinstance(took, dict) and took.get("run_started_at") == budget.started_at:
        return str(took.get("why", "the search kept the refit's share of the time budget"))
    return None


def record_took_share(study: optuna.Study, budget: TimeBudget, why: str) -> None:
    study.set_user_attr(TOOK_SHARE_ATTR, {"run_started_at": budget.started_at, "why": why})


@dataclass(frozen=True)
class TrialNeeds:
    """The epochs a new trial must have time for: those before its pruner can judge it, or all of
    them without a pruner. (Before ``min_complete`` trials are complete the pruner stops nothing, but
    the budget may: such a trial is kept with its best epoch, so the same epochs suffice.)"""

    epochs: int = 1  # a trial's full budget
    min_resource: int = 1  # epochs every trial gets before it can be pruned
    prunes: bool = True

    @classmethod
    def of(cls, spec: StudySpec) -> TrialNeeds:
        pruner = spec.pruner
        return cls(spec.base_config().epochs, pruner.min_resource, pruner.name != "none")

    def epochs_needed(self) -> int:
        return max(1, min(self.min_resource, self.epochs)) if self.prunes else self.epochs


def trial_pace(trials: Sequence[FrozenTrial], since: float | None = None) -> float | None:
    """Seconds per epoch of recently ended trials, set-up and records included; None before any.

    Trials that started at or after ``since`` (this run) are preferred over older runs'.
    """
    ended = [t for t in trials if t.datetime_start and t.datetime_complete and t.intermediate_values]
    if since is not None:
        start = datetime.datetime.fromtimestamp(since)
        ended = [t for t in ended if t.datetime_start >= start] or ended
    ended.sort(key=lambda t: t.datetime_complete)  # type: ignore[arg-type, return-value]
    paces = [_seconds(t) / len(t.intermediate_values) for t in ended[-PACE_TRIALS:]]
    return sum(paces) / len(paces) if paces else None


def _seconds(trial: FrozenTrial) -> float:
    assert trial.datetime_start is not None and trial.datetime_complete is not None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


@dataclass
class Deadline:
    """The time budget applied while trials run; ``clock`` is time.time unless a test says otherwise.

    With a ``reserve`` (the refit phase's share, beyond ``budget``), a trial that would stop, or not
    start, at ``budget`` first checks whether a fold group could use the share; if none could, the
    deadline moves to the whole budget (``took_share`` says why) and the trial goes on."""

    budget: TimeBudget
    needs: TrialNeeds = field(default_factory=TrialNeeds)
    clock: Callable[[], float] = time.time
    cut: dict[int, str] = field(default_factory=dict)  # trial number -> why it was stopped
    reserve: RefitReserve | None = None
    took_share: str | None = None  # why the search took the refit's share, once it did
    best: tuple[EpochPace, int] | None = None  # the best complete trial's pace and epochs: the refit's first group
    # With several trial processes: one that took the share tells the others (and the summary and the
    # refit phase) through the study, so that none stops at the search's part while another goes on.
    taken_elsewhere: Callable[[], str | None] | None = None
    announce: Callable[[str], None] | None = None

    def left(self) -> float | None:
        return self.budget.left(self.clock())

    def can_start(self, pace: float | None) -> bool:
        """Whether a new trial can run the epochs it needs at ``pace`` s/epoch within the budget."""
        left = self.left()
        if left is None:
            return True
        needed = self.needs.epochs_needed()
        if left > 0 and (pace is None or left >= needed * pace):
            return True
        group = self.best or ((EpochPace(pace), needed) if pace is not None else None)  # what the refit would train first
        return group is not None and self._take_share(group) and self.can_start(pace)

    def cut_after(self, trial: int, epoch: int, epochs: int, epoch_seconds: float, val_seconds: float = 0.0) -> bool:
        """Whether to stop ``trial`` after ``epoch`` (``epoch_seconds`` long, ``val_seconds`` of it its
        validation pass): its next epoch would end past the budget."""
        left = self.left()
        if left is None or epoch >= epochs or epoch_seconds <= left:
            return False
        pace = EpochPace(epoch_seconds, val_seconds if 0 < val_seconds < epoch_seconds else 0.0)
        if self._take_share((pace, epoch), *([self.best] if self.best else [])):
            return self.cut_after(trial, epoch, epochs, epoch_seconds, val_seconds)
        self.cut[trial] = f"{TIME_CUT_REASON} after epoch {epoch} of {epochs}"
        return True

    def _take_share(self, *groups: tuple[EpochPace, int]) -> bool:
        """Move the deadline to the whole budget when no fold group of ``groups`` (pace and epochs
        of the trials the refit may take first: this one, the best so far) could use the refit's
        share."""
        if self.reserve is None:
            return False
        elsewhere = self.taken_elsewhere() if self.taken_elsewhere else None
        now = self.clock()
        short = [self.reserve.shortfall(pace, epochs, now) for pace, epochs in groups]
        why = elsewhere or (short[0] if short and all(short) else None)
        if why is None:
            return False
        self.budget, self.reserve, self.took_share = self.reserve.whole, None, why
        if not elsewhere:
            log.info("refit: %s (%s left)", why, format_duration(max(0.0, self.left() or 0.0)))
            if self.announce:
                self.announce(why)
        return True


class RefitBudget:
    """A refit's time budget (search/refitting/): no model starts unless its epochs fit in the time
    left at the expected pace, and one that would still run past the deadline stops after an epoch
    (a fold model is kept with that epoch's weights, and a later run with the time trains it again;
    an all-people model is thrown away: search/refitting/train.py). Counted on
    the monotonic clock from its creation; ``timeout_s`` None: no limit."""

    def __init__(self, timeout_s: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.deadline = None if timeout_s is None else clock() + timeout_s

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - self.clock()

    def fits(self, seconds: float) -> bool:
        return seconds <= self.left()


def requeue(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Queue a trial stopped at the time budget once more with its parameters; False if it was already."""
    again = copy.deepcopy(trial)
    again.user_attrs = {}  # the next run records them afresh
    before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryCallback(max_retry=StorageSettings().max_retry)(study, again)
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) > before


@dataclass(frozen=True)
class RunOutcome:
    """What a run did with its budget, read back from the storage."""

    budget: TimeBudget
    n_trials: int  # the study's trial budget
    finished: int  # finished (complete + pruned) trials of the whole study
    complete: int  # ... of them in this run
    pruned: int
    cut: tuple[tuple[int, str, bool], ...]  # trials stopped at the budget with nothing kept: number, reason, queued
    by_time: bool
    kept: tuple[tuple[int, str], ...] = ()  # trials stopped at the budget and kept complete: number, reason

    def message(self) -> str | None:
        """What to tell the user when the time budget ended the run; None when it did not."""
        if not self.by_time or self.budget.seconds is None:
            return None
        fit = self.complete + self.pruned
        source = f"{self.budget.source}, counted from the command's start"
        budget = f"{format_duration(self.budget.seconds)} ({source})"
        lines = [f"Time budget reached: {fit} trial{'s' if fit != 1 else ''} fit in this run's {budget}"
                 + (f": {self.complete} complete, {self.pruned} pruned." if fit else ".")]
        if not fit:
            lines.append("The budget was spent before a trial could start; the first run also generates "
                         "the bench and builds the image cache, which later runs reuse.")
        for number, reason in self.kept:
            lines.append(f"Trial {number} was {reason}; it is kept as a complete trial, scored by its best epoch.")
        for number, reason, queued in self.cut:
            again = ("it runs first when the study resumes" if queued
                     else "it was cut before and is not queued again")
            lines.append(f"Trial {number} was {reason}; {again}.")
        lines.append(
            f"The study has {self.finished} of its {self.n_trials} trials. To run more, run the same command "
            f"again: it resumes the study with a new time budget. Or pass --n-trials {self.n_trials} (without "
            "--timeout) to run the rest without a time limit."
        )
        return "\n".join(lines)


def run_outcome(study: optuna.Study, budget: TimeBudget, n_trials: int, needs: TrialNeeds = TrialNeeds(),
                now: float | None = None) -> RunOutcome:
    """The outcome of the run that started at ``budget.started_at``."""
    trials = study.get_trials(deepcopy=False)
    start = datetime.datetime.fromtimestamp(budget.started_at)
    mine = [t for t in trials if t.datetime_start is not None and t.datetime_start >= start]
    waiting = {t.system_attrs.get("retry_history", [None])[-1] for t in trials if t.state == TrialState.WAITING}
    attrs = {t.number: TrialAttrs.read(t) for t in mine}
    reasons = {t.number: attrs[t.number].failure_reason or "" for t in mine if t.state == TrialState.FAIL}
    cut = tuple((n, why, n in waiting) for n, why in reasons.items() if why.startswith(TIME_CUT_REASON))
    kept = tuple((t.number, attrs[t.number].cut_by_budget) for t in mine
                 if t.state == TrialState.COMPLETE and attrs[t.number].cut_by_budget)
    finished = sum(t.state in FINISHED for t in trials)
    deadline = Deadline(budget, needs, clock=(lambda: now) if now is not None else time.time)
    no_room = not deadline.can_start(trial_pace(trials, budget.started_at))
    return RunOutcome(
        budget=budget,
        n_trials=n_trials,
        finished=finished,
        complete=sum(t.state == TrialState.COMPLETE for t in mine),
        pruned=sum(t.state == TrialState.PRUNED for t in mine),
        cut=cut,
        kept=kept,
        by_time=finished < n_trials and (bool(cut) or bool(kept) or no_room),
    )

