"""What one run of a study is asked to do (``RunOptions``), and the plan it resolves to (``RunPlan``).

``search.run`` and ``search.worker`` build the options from their flags; ``RunOptions`` checks
what it can before anything runs. :func:`plan_run` then reads and validates the study file once
and resolves every option (profile, seed, trial and time budgets, storage, workers, refit) into
one frozen ``RunPlan``, which the command passes down: the run (search/engine/runstudy.py), the
local launcher and its worker processes (search/engine/launcher.py), the refit phase and its
processes (search/refitting/). None of them reads the study file or resolves an option again.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from runners import resolve_device
from runners.devices import requested_augment_on
from search.cli.studyargs import study_flags
from search.engine.budget import RefitReserve, TimeBudget, search_part, time_budget
from search.engine.checks import check_budget, check_threads, check_workdir
from search.engine.track import check_installed
from search.engine.workercount import default_workers
from search.storage.backends import DEFAULT_WORKDIR, StorageSettings, redact, resolve_storage
from search.storage.forms import check_storage_url
from search.studyfile.parse import StudySpec, load_study_spec


@dataclass(frozen=True)
class RunOptions:
    study: str
    name: str | None = None
    data: Path | None = None
    relabel: Path | None = None
    storage: str | None = None
    workdir: Path = DEFAULT_WORKDIR
    n_trials: int | None = None
    timeout_s: float | None = None
    device: str = "auto"
    augment_on: str | None = None  # auto, loader or device (default: env MASK_AUTOML_AUGMENT_ON, else auto)
    seed: int | None = None
    profile: str | None = None
    worker_index: int = 0
    started_at: float | None = None  # time.time() the command started: its time budget counts from there
    progress: str = "auto"  # a bar on a terminal, else log lines (search/engine/progress.py); "log": log lines
    heartbeat_s: int | None = None  # RDB storages: heartbeat interval (default StorageSettings')
    grace_s: int | None = None  # RDB storages: a trial silent this long is failed and retried
    threads: int | None = None  # torch intra-op threads (default: search.common.threads.default_threads)
    refit: bool = False  # search.run: its study file's [refit] phase follows the search (search/refitting/phase.py)
    track: str | None = None  # experiment tracker of finished trials: mlflow or wandb (search/engine/track/)
    track_to: str | None = None  # its tracking URI (mlflow) or run folder (wandb); default under workdir

    def __post_init__(self) -> None:
        requested_augment_on(self.augment_on)  # a bad MASK_AUTOML_AUGMENT_ON fails here, not in every trial
        check_budget(self.n_trials, self.timeout_s)
        check_threads(self.threads)
        check_installed(self.track)
        for flag, value in (("--heartbeat", self.heartbeat_s), ("--grace", self.grace_s)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be a whole number of seconds >= 1 but got {value}.")
        settings = self.storage_settings()
        if settings.grace_period_s <= settings.heartbeat_interval_s:
            raise ValueError(
                f"--grace ({settings.grace_period_s} s) must be longer than --heartbeat "
                f"({settings.heartbeat_interval_s} s), or live trials would be failed."
            )

    @property
    def storage_url(self) -> str:
        return resolve_storage(self.storage, self.workdir)

    def storage_settings(self) -> StorageSettings:
        default = StorageSettings()
        heartbeat = self.heartbeat_s or default.heartbeat_interval_s
        grace = self.grace_s or max(default.grace_period_s, 4 * heartbeat)
        return StorageSettings(heartbeat, grace, default.max_retry)


@dataclass(frozen=True)
class RunPlan:
    """One run, resolved once by :func:`plan_run` and passed down whole (see the module docstring)."""

    options: RunOptions  # as the user asked: the flags the run echoes back in its "Next:" lines
    spec: StudySpec  # the study file with the run's profile, --seed and --n-trials applied
    name: str  # the study's name in the storage (--name, else the study file's name)
    storage_url: str  # --storage, else the SQLite file in the work folder
    storage_settings: StorageSettings  # heartbeat and grace
    budget: TimeBudget  # the whole run's time budget, counted from the command's start
    search_budget: TimeBudget  # the search's part of it: all of it unless the refit phase follows
    refit: bool  # the study file's [refit] phase follows the search (not --no-refit, and enabled)
    workers: int = 1  # trial processes on this machine (search/engine/workercount.py)
    reserve: RefitReserve | None = None  # the refit's share, which the search takes when no group could use it

    @property
    def workdir(self) -> Path:
        return self.options.workdir

    def without_refit(self) -> RunPlan:
        """The plan of a search that takes the whole time budget (no refit phase follows)."""
        options = dataclasses.replace(self.options, refit=False)
        return dataclasses.replace(self, options=options, search_budget=self.budget, refit=False, reserve=None)

    def for_worker(self, index: int, device: str) -> RunPlan:
        """One local worker process's plan: its device, its sampler offset, log lines (no bar)."""
        options = dataclasses.replace(self.options, device=device, worker_index=self.options.worker_index + index,
                                      progress="log")
        return dataclasses.replace(self, options=options, workers=1)

    def study_args(self) -> str:
        """The flags that name this run's stored study in the other verbs, shell-quoted, the storage
        URL without its password."""
        storage = "" if self.options.storage is None else f" --storage {shlex.quote(redact(self.storage_url))}"
        workdir = "" if self.workdir == DEFAULT_WORKDIR else f" --workdir {shlex.quote(str(self.workdir))}"
        return f"{shlex.join(study_flags(self.name, self.options.study))}{storage}{workdir}"


def plan_run(opts: RunOptions, workers: int | None = 1, now: float | None = None) -> RunPlan:
    """Check ``opts``, read and validate the study file once, and resolve the run's plan.

    ``workers``: the trial processes on this machine (None: search/engine/workercount.py's default
    for the device and the study's trials). A run without a start time (a library call) starts
    ``now`` (default: the time of this call). Bad input raises ValueError with one line.
    """
    check_workdir(opts.workdir)
    url = opts.storage_url
    check_storage_url(url)
    spec = _resolve_spec(opts)
    if workers is None:
        workers = default_workers(opts.device, spec.n_trials, opts.threads)
    started = opts.started_at if opts.started_at is not None else (time.time() if now is None else now)
    budget = time_budget(spec, opts.timeout_s, opts.n_trials, started)
    refit = opts.refit and spec.refit.enabled
    reserve = None
    if refit and budget.seconds is not None:
        reserve = RefitReserve(budget, spec.refit_fold_choices[-1], 1.0 - spec.split.val_fraction, workers)
    return RunPlan(
        options=dataclasses.replace(opts, profile=spec.profile),
        spec=spec,
        name=opts.name or spec.name,
        storage_url=url,
        storage_settings=opts.storage_settings(),
        budget=budget,
        search_budget=search_part(budget, spec.refit.time_share) if refit else budget,
        refit=refit,
        workers=workers,
        reserve=reserve,
    )


def _resolve_spec(opts: RunOptions) -> StudySpec:
    """The study file for the run's device profile, with ``--seed`` and ``--n-trials`` applied."""
    device = resolve_device(opts.device)
    profile = opts.profile or ("gpu" if device.type == "cuda" else "cpu")
    spec = load_study_spec(opts.study, profile=profile)
    if opts.seed is not None:
        spec = dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, seed=opts.seed))
    if opts.n_trials is not None:
        spec = dataclasses.replace(spec, n_trials=opts.n_trials)
    return spec
