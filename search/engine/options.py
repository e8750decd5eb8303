"""What one run of a study is asked to do (``RunOptions``), and the study file it resolves to.

``search.run`` and ``search.worker`` build these from their flags; the local launcher copies
them for each worker process. ``RunOptions`` checks what it can before anything runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from runners import resolve_device
from runners.devices import requested_augment_on
from search.engine.checks import check_budget, check_threads
from search.engine.track import check_installed
from search.storage.backends import DEFAULT_WORKDIR, StorageSettings, resolve_storage
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


def resolve_spec(opts: RunOptions) -> StudySpec:
    """The study file for the run's device profile, with ``--seed`` and ``--n-trials`` applied."""
    device = resolve_device(opts.device)
    profile = opts.profile or ("gpu" if device.type == "cuda" else "cpu")
    spec = load_study_spec(opts.study, profile=profile)
    if opts.seed is not None:
        spec = dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, seed=opts.seed))
    if opts.n_trials is not None:
        spec = dataclasses.replace(spec, n_trials=opts.n_trials)
    return spec
