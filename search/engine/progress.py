"""A study's progress while it runs: one bar on a terminal, one log line per finished trial otherwise.

    age_cutoff |######    | 8/20 trials · 3:12/8:00 · ETA 4:48 · best F1 0.8764 (#5) · trial 9 epoch 2/4

- ``8/20 trials``: finished (complete + pruned) trials of the whole study against its trial budget;
- ``3:12/8:00``: this run's time against its time budget (search/engine/budget.py), when it has one; the
  bar fills with whichever of the two budgets ends the run first;
- ``ETA``: when the run should end, estimated from the epochs done: (trials left x epochs per finished
  trial - epochs the running trial has done) x seconds per epoch of this run, or the time left if sooner;
- ``best F1``: the study's best macro-F1 so far and its trial;
- ``trial 9 epoch 2/4``: the running trial's last finished epoch. Trials train without runners.fit's
  per-epoch bars: their epochs are folded into this line.

The bar is drawn on stderr when it is a terminal; log lines (and Optuna's warnings) written meanwhile
are printed above it. Elsewhere (a log file, CI) it is replaced by one INFO line per finished trial with
the same figures. The processes of ``--workers N`` share one terminal, where N bars would garble each
other, so they always write log lines (each with its worker's prefix), and their launcher draws none.
Optuna's own line per trial is left out unless ``-v``: the line here says what it said.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from runners import EpochRecord
from search.engine.budget import (
    Deadline,
    EpochPace,
    RefitReserve,
    TimeBudget,
    TrialNeeds,
    record_took_share,
    requeue,
    search_took_share,
    trial_pace,
)
from search.engine.nearcopy import NOT_RUN
from search.engine.trialbudget import FINISHED
from search.storage.trial_attrs import TrialAttrs

log = logging.getLogger(__name__)

PROGRESS_MODES = ("auto", "log")  # auto: a bar on a terminal, log lines elsewhere; log: always log lines
BAR_STEPS = 1000
UNSIZED_COLUMNS = 160  # the bar's width on a terminal that does not say how wide it is


def clock_text(seconds: float) -> str:
    """``192`` -> ``3:12``; ``3725`` -> ``1:02:05``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _has_width(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that says how wide it is (a bar is then fitted to it)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


@dataclass(frozen=True)
class Snapshot:
    """What the bar or a log line shows at one moment."""

    study: str
    n_trials: int  # the study's trial budget
    finished: int  # finished trials of the whole study
    elapsed: float  # seconds since the run started
    time_budget: float | None = None  # seconds, from the run's start
    best: tuple[int, float] | None = None  # (trial, macro-F1)
    running: tuple[int, int, int] | None = None  # (trial, epochs done, epochs)
    epoch_seconds: float | None = None  # mean over this run's epochs
    epochs_per_trial: float | None = None  # mean over finished trials; the running trial's epochs before any
    parallel: int = 1  # trials running at once (workers)

    def trials_eta(self) -> float | None:
        left = max(0, self.n_trials - self.finished)
        if left == 0:
            return 0.0
        per_trial = self.epochs_per_trial or (self.running[2] if self.running else None)
        if self.epoch_seconds is None or per_trial is None:
            return None
        epochs = left * per_trial - (self.running[1] if self.running else 0)
        return max(0.0, epochs) * self.epoch_seconds / max(1, self.parallel)

    def eta(self) -> tuple[float | None, str]:
        """Seconds until the run ends, and which budget ends it: "trials" or "time"."""
        by_trials = self.trials_eta()
        if self.time_budget is None:
            return by_trials, "trials"
        by_time = max(0.0, self.time_budget - self.elapsed)
        if by_trials is not None and by_trials <= by_time:
            return by_trials, "trials"
        return by_time, "time"

    def fraction(self) -> float:
        """How far along the run is, by the budget that ends it."""
        _, binds = self.eta()
        if binds == "time" and self.time_budget:
            share = self.elapsed / self.time_budget
        else:
            share = self.finished / self.n_trials if self.n_trials else 1.0
        return min(1.0, max(0.0, share))

    def text(self) -> str:
        parts = [f"{self.finished}/{self.n_trials} trials"]
        if self.time_budget is not None:
            parts.append(f"{clock_text(self.elapsed)}/{clock_text(self.time_budget)}")
        else:
            parts.append(clock_text(self.elapsed))
        eta, binds = self.eta()
        if eta is None:
            parts.append("ETA ?")
        else:
            parts.append(f"ETA {clock_text(eta)}" + (" (time budget)" if binds == "time" else ""))
        parts.append("best F1 -" if self.best is None else f"best F1 {self.best[1]:.4f} (#{self.best[0]})")
        if self.running is not None:
            parts.append(f"trial {self.running[0]} epoch {self.running[1]}/{self.running[2]}")
        return " · ".join(parts)


class _Bar(tqdm):  # type: ignore[type-arg]
    """tqdm drawing ``{status}``: the snapshot's text, set before each refresh."""

    status = ""

    @property
    def format_dict(self) -> dict[str, Any]:
        return {**super().format_dict, "status": self.status}


class StudyProgress:
    """Follows the trials of one run: a bar (``bar=True``) or one log line per finished trial."""

    def __init__(
        self,
        study: str,
        n_trials: int,
        budget: TimeBudget,
        bar: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float | None = 1.0,  # bar only: redraw this often so the clocks move during an epoch
    ) -> None:
        self.study = study
        self.n_trials = n_trials
        self.budget = budget
        self.clock = clock
        self.finished = 0
        self.best: tuple[int, float] | None = None
        self.running: tuple[int, int, int] | None = None
        self.epochs_per_trial: float | None = None
        self.parallel = 1
        self._epochs = 0
        self._epoch_seconds = 0.0
        self.wants_bar = bar
        self.stream = stream
        self.tick_s = tick_s
        self._lock = threading.Lock()
        self._bar: _Bar | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # --- what happened --------------------------------------------------------------------------

    def load(self, study: optuna.Study) -> None:
        """Counts from the storage: finished trials, the best one, epochs per trial, trials running."""
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state in FINISHED]
        scored = [t for t in done if t.state == TrialState.COMPLETE and t.value is not None]
        with self._lock:
            self.finished = len(done)
            if scored:
                top = max(scored, key=lambda t: t.value)  # type: ignore[arg-type, return-value]
                self.best = (top.number, float(top.value))  # type: ignore[arg-type]
            epochs = [len(t.intermediate_values) for t in done if t.intermediate_values]
            self.epochs_per_trial = sum(epochs) / len(epochs) if epochs else None
            self.parallel = 1 + sum(t.state == TrialState.RUNNING for t in trials)
        self.draw()

    def trial_started(self, number: int, epochs: int) -> None:
        with self._lock:
            self.running = (number, 0, epochs)
        self.draw()

    def epoch_done(self, number: int, epoch: int, epochs: int, seconds: float) -> None:
        with self._lock:
            self.running = (number, epoch, epochs)
            self._epochs += 1
            self._epoch_seconds += seconds
        self.draw()

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        with self._lock:
            if self.running is not None and self.running[0] == trial.number:
                self.running = None
        self.load(study)
        log.info("%s | %s", describe(trial), self.snapshot().text())

    # --- what is shown --------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                study=self.study,
                n_trials=self.n_trials,
                finished=self.finished,
                elapsed=self.clock() - self.budget.started_at,
                time_budget=self.budget.seconds,
                best=self.best,
                running=self.running,
                epoch_seconds=self._epoch_seconds / self._epochs if self._epochs else None,
                epochs_per_trial=self.epochs_per_trial,
                parallel=self.parallel,
            )

    def draw(self) -> None:
        if self._bar is None:
            return
        snap = self.snapshot()
        with self._lock:
            self._bar.status = snap.text()
            self._bar.n = round(snap.fraction() * BAR_STEPS)
            self._bar.refresh()

    def _tick(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.draw()

    def open(self) -> None:
        """Draw the bar (``bar=True``), and redraw it every ``tick_s`` until ``close``."""
        if not self.wants_bar or self._bar is not None:
            return
        stream = self.stream or sys.stderr
        sized = _has_width(stream)  # else a width of 0 (a pseudo-terminal without one) trims the bar to nothing
        self._bar = _Bar(total=BAR_STEPS, file=stream, desc=self.study, leave=True, dynamic_ncols=sized,
                         ncols=None if sized else UNSIZED_COLUMNS, bar_format="{desc} |{bar:20}| {status}",
                         mininterval=0)
        self.draw()
        if self.tick_s:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, args=(self.tick_s,), daemon=True)
            self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._bar is not None:
            self.draw()
            self._bar.close()
            self._bar = None

    @contextlib.contextmanager
    def showing(self, verbose: bool = False) -> Iterator[StudyProgress]:
        """While trials run: Optuna's per-trial INFO lines off (unless ``verbose``), log lines above the bar."""
        optuna_level = optuna.logging.get_verbosity()
        if not verbose:
            optuna.logging.set_verbosity(max(optuna_level, logging.WARNING))
        redirect = (logging_redirect_tqdm([logging.getLogger(), logging.getLogger("optuna")])
                    if self.wants_bar else contextlib.nullcontext())
        try:
            with redirect:
                self.open()
                yield self
        finally:
            self.close()
            optuna.logging.set_verbosity(optuna_level)


def describe(trial: FrozenTrial) -> str:
    """One trial's end: ``trial 7 complete: macro-F1 0.8512, 4 epochs``."""
    epochs = len(trial.intermediate_values)
    attrs = TrialAttrs.read(trial)
    if trial.state == TrialState.COMPLETE:
        cut = attrs.cut_by_budget
        return f"trial {trial.number} complete: macro-F1 {trial.value:.4f}, {epochs} epochs" + (f" ({cut})" if cut else "")
    if trial.state == TrialState.PRUNED:
        scores = [h["val_macro_f1"] for h in attrs.history if h.get("val_macro_f1") is not None]
        best = f" (best macro-F1 {max(scores):.4f})" if scores else ""
        return f"trial {trial.number} pruned after epoch {epochs}{best}"
    reason = attrs.failure_reason or "no reason recorded"
    if reason.startswith(NOT_RUN):  # ended before it trained, on purpose: not a failure
        return f"trial {trial.number} {reason}"
    return f"trial {trial.number} {trial.state.name.lower()}: {reason}"


class RunWatch:
    """Between a run's trials and its budget and progress: the objective tells it about trials and
    epochs (``trial_started``, ``epoch_done``, which says when to stop a trial at the time budget),
    and Optuna calls it after each trial (re-queues a trial cut at the budget before it kept an
    epoch, stops the study when no further trial can start in time)."""

    def __init__(self, progress: StudyProgress, deadline: Deadline) -> None:
        self.progress = progress
        self.deadline = deadline

    def trial_started(self, number: int, epochs: int) -> None:
        self.progress.trial_started(number, epochs)

    def epoch_done(self, number: int, record: EpochRecord, epochs: int, pruned: bool) -> bool:
        """True: stop the (unpruned) trial after this epoch, the next would end past the time budget."""
        self.progress.epoch_done(number, record.epoch, epochs, record.seconds)
        cut = not pruned and self.deadline.cut_after(number, record.epoch, epochs, record.seconds, record.val_seconds)
        self.progress.budget = self.deadline.budget  # the whole budget, once the search took the refit's share
        return cut

    def cut_reason(self, number: int) -> str | None:
        return self.deadline.cut.get(number)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        cut = trial.number in self.deadline.cut  # kept as complete, or (nothing trained) queued again
        if cut and trial.state == TrialState.FAIL:
            requeue(study, trial)
        self.progress.trial_finished(study, trial)
        trials = study.get_trials(deepcopy=False)
        if self.deadline.reserve is not None:
            self.deadline.best = best_pace(trials)
        if cut or not self.deadline.can_start(trial_pace(trials, self.deadline.budget.started_at)):
            study.stop()
        self.progress.budget = self.deadline.budget


def best_pace(trials: list[FrozenTrial]) -> tuple[EpochPace, int] | None:
    """The best complete trial's pace and epochs run (the refit's first group), if it records them."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    attrs = TrialAttrs.read(max(complete, key=lambda t: t.value))  # type: ignore[arg-type, return-value]
    pace = EpochPace.of(attrs)
    if pace is None or not attrs.epochs_run:
        return None
    return pace, int(attrs.epochs_run)


def progress_mode(mode: str) -> str:
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress must be one of {', '.join(PROGRESS_MODES)} but got {mode!r}.")
    return mode


def run_watch(
    study: optuna.Study,
    n_trials: int,
    budget: TimeBudget,
    needs: TrialNeeds,
    mode: str = "auto",
    stream: TextIO | None = None,
    terminal: Callable[[TextIO], bool] = is_terminal,
    reserve: RefitReserve | None = None,
) -> RunWatch:
    """The watch of one run: a bar when ``mode`` is auto and ``stream`` (stderr) is a terminal;
    ``reserve``: the refit's share beyond ``budget``, which the search may take (search/engine/budget.py)."""
    stream = stream or sys.stderr
    bar = progress_mode(mode) == "auto" and terminal(stream)
    progress = StudyProgress(study.study_name, n_trials, budget, bar=bar, stream=stream)
    progress.load(study)
    deadline = Deadline(budget, needs, reserve=reserve)
    if reserve is not None:
        deadline.taken_elsewhere = lambda: search_took_share(study, reserve.whole)
        deadline.announce = lambda why: record_took_share(study, reserve.whole, why)
    return RunWatch(progress, deadline)
