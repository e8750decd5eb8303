"""``python -m search.run --study NAME``: create or resume a study and run its trials.

Without ``--data`` the synthetic bench is used (generated on first use under data/bench).
Running the same command again resumes the study up to its trial budget; ``--n-trials``
raises (or lowers) that budget, counted over all workers as finished (complete or pruned)
trials. ``--workers N`` runs N processes on this machine (see search/workers.py); more
machines join with ``python -m search.worker`` (see search/worker.py).

A study file's profile may also give each run a time budget, counted from the command's start
(the shipped studies: 8 minutes on a CPU); ``--timeout`` replaces it, ``--n-trials`` alone lifts
it (search/budget.py). On a terminal a bar shows the study's progress (search/progress.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from runners import resolve_device
from runners.devices import AUGMENT_PLACES, requested_augment_on
from search import records
from search.checks import GaveUp, check_budget, check_threads, check_workdir
from search.cli.studyargs import study_flags
from search.budget import TrialNeeds, end_message, process_started_at, run_time_budget
from search.objective import Objective, TrialFailed
from search.prepare import StudyMismatchError, open_study
from search.progress import run_watch
from search.storage import (
    DEFAULT_WORKDIR,
    StorageSettings,
    dashboard_command,
    default_storage_url,
    hide_secrets,
    no_experimental_warnings,
    redact,
    storage_error,
)
from search.study import StudySpec, load_study
from search.threads import set_torch_threads
from search.urls import PASSWORD_NOTE, check_storage_url, has_password
from search.workers import (
    has_heartbeat,
    quiet_expected_tracebacks,
    reap_orphans,
    run_local_workers,
    worker_objective,
)

log = logging.getLogger("search")
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


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
    progress: str = "auto"  # a bar on a terminal, else log lines (search/progress.py); "log": log lines
    heartbeat_s: int | None = None  # RDB storages: heartbeat interval (default StorageSettings')
    grace_s: int | None = None  # RDB storages: a trial silent this long is failed and retried
    threads: int | None = None  # torch intra-op threads (default: search.threads.default_threads)

    def __post_init__(self) -> None:
        requested_augment_on(self.augment_on)  # a bad MASK_AUTOML_AUGMENT_ON fails here, not in every trial
        check_budget(self.n_trials, self.timeout_s)
        check_threads(self.threads)
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
        return self.storage or default_storage_url(self.workdir)

    def storage_settings(self) -> StorageSettings:
        default = StorageSettings()
        heartbeat = self.heartbeat_s or default.heartbeat_interval_s
        grace = self.grace_s or max(default.grace_period_s, 4 * heartbeat)
        return StorageSettings(heartbeat, grace, default.max_retry)


def build_parser(prog: str = "python -m search.run") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", required=True, help="study file name in studies/ (e.g. age_cutoff) or a .toml path")
    p.add_argument("--name", help="study name in the storage (default: the study file's name)")
    p.add_argument("--data", type=Path, help="data root holding train/ (default: the synthetic bench)")
    p.add_argument("--relabel", type=Path, help="CSV of label fixes to apply (see studies/relabel_example.csv)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///runs/studies.db)")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="checkpoints, artifacts and caches")
    p.add_argument("--n-trials", type=int,
                   help="finished trials the study should reach (default: the study file's); without "
                        "--timeout, also lifts the study file's time budget")
    p.add_argument("--timeout", type=float, dest="timeout_s",
                   help="time budget in seconds from the command's start (default: the study file's CPU "
                        "profile's; --n-trials alone lifts it); a trial that would run past it is stopped and queued for the next run")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--augment-on", choices=AUGMENT_PLACES, dest="augment_on",
                   help="where a trial's augmentation set runs: per image in the loader's worker processes, or "
                        "batched on the training device (default auto: the device on a GPU, the loader on a CPU)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the study file's)")
    p.add_argument("--profile", choices=("cpu", "gpu"), help="study profile (default: from the device)")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="worker processes on this machine: one per GPU, or CPU processes (needs a journal "
                        "or PostgreSQL storage; default with N > 1: journal file <workdir>/<study>.journal)")
    p.add_argument("--heartbeat", type=int, dest="heartbeat_s",
                   help="PostgreSQL/SQLite storages: seconds between a trial's heartbeats (default 30)")
    p.add_argument("--grace", type=int, dest="grace_s",
                   help="seconds without a heartbeat before a trial is failed and retried (default 120)")
    p.add_argument("--threads", type=int,
                   help="torch intra-op threads (default: the cores the loader's worker processes leave free, "
                        "at least 1)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 but got {text!r}")
    return value


def options_from_args(args: argparse.Namespace) -> RunOptions:
    fields = {f.name for f in dataclasses.fields(RunOptions)}
    return RunOptions(**{k: v for k, v in vars(args).items() if k in fields}, started_at=process_started_at())


def resolve_spec(opts: RunOptions) -> StudySpec:
    device = resolve_device(opts.device)
    profile = opts.profile or ("gpu" if device.type == "cuda" else "cpu")
    spec = load_study(opts.study, profile=profile)
    if opts.seed is not None:
        spec = dataclasses.replace(spec, sampler=dataclasses.replace(spec.sampler, seed=opts.seed))
    if opts.n_trials is not None:
        spec = dataclasses.replace(spec, n_trials=opts.n_trials)
    return spec


def run_study(opts: RunOptions) -> optuna.Study:
    """Run trials until the study's budget of finished trials is reached, or its time budget (search/budget)."""
    spec = resolve_spec(opts)
    budget = run_time_budget(opts, spec)
    study, study_data = open_study(
        spec, opts.storage_url, opts.workdir, opts.data, opts.relabel, opts.name, opts.worker_index,
        opts.storage_settings(),
    )
    reap_orphans(study)  # trials left RUNNING by a dead local worker (storages without heartbeat)
    remaining = spec.n_trials - _count(study, BUDGET_STATES)
    if remaining <= 0:
        log.info("study %s already has %d finished trials (budget %d); pass --n-trials to run more",
                 study.study_name, _count(study, BUDGET_STATES), spec.n_trials)
        return study
    watch = run_watch(study, spec.n_trials, budget, TrialNeeds.of(spec), opts.progress)
    objective = worker_objective(
        Objective(spec, study_data, opts.workdir, device=opts.device, augment_on=opts.augment_on, watch=watch),
        spec.n_trials,
    )
    left = watch.deadline.left()
    log.info("study %s (%s profile): running up to %d more trials%s", study.study_name, spec.profile, remaining,
             "" if left is None else f" for up to {left:.0f} s" if left > 0 else ": none, the time budget is spent")
    trial_budget = _Budget(spec.n_trials)
    with watch.progress.showing(verbose=log.isEnabledFor(logging.DEBUG)):
        if left is None or left > 0:
            study.optimize(
                objective,
                timeout=left,
                callbacks=[trial_budget, _note, watch],
                catch=(TrialFailed,),
                gc_after_trial=True,
            )
    if trial_budget.gave_up:
        raise GaveUp(f"study {study.study_name} stopped: {trial_budget.failures} trials failed; see their "
                     "failure_reason in the dashboard, fix the cause, then run the same command to resume.")
    return study


class _Budget:
    """Stop when the study (all workers together) has enough finished trials, or too many failures.

    Trials other workers are running count as on their way, so N workers do not overshoot the
    budget by N - 1; a trial that then fails leaves its own worker going, as it sees the gap.
    """

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials
        self.failures = 0
        self.gave_up = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.failures += trial.state == TrialState.FAIL
        reap_orphans(study)
        if has_heartbeat(study):
            with no_experimental_warnings():
                optuna.storages.fail_stale_trials(study)  # a dead worker's trial is not on its way
        if _count(study, BUDGET_STATES) + _count(study, (TrialState.RUNNING,)) >= self.n_trials:
            study.stop()
        elif self.failures > max(10, 2 * self.n_trials):
            log.error("stopping: %d trials of this worker failed; see their failure_reason", self.failures)
            self.gave_up = True
            study.stop()


def _note(study: optuna.Study, trial: FrozenTrial) -> None:
    records.save_study_note(study)


def _count(study: optuna.Study, states: tuple[TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def print_summary(study: optuna.Study, opts: RunOptions) -> None:
    print()
    print(records.study_note(study, top=10))
    for line in next_commands(study.study_name, opts):
        print(line)
    ended = end_message(study, opts)  # the time budget ended the run: how many trials fit, how to run more
    if ended:
        print()
        print(ended)


def next_commands(name: str, opts: RunOptions) -> list[str]:
    """The "Next:" lines: shell-quoted, the storage URL without its password (and where it goes)."""
    storage = "" if opts.storage is None else f" --storage {shlex.quote(redact(opts.storage_url))}"
    workdir = "" if opts.workdir == DEFAULT_WORKDIR else f" --workdir {shlex.quote(str(opts.workdir))}"
    study = f"{shlex.join(study_flags(name, opts.study))}{storage}{workdir}"
    lines = [
        "Next:",
        f"  dashboard: {dashboard_command(opts.storage_url, opts.workdir)}",
        f"  report:    python -m search.report {study}",
        f"  ensemble:  python -m search.ensemble {study}",
        f"  export:    python -m search.export {study} --out {shlex.quote(f'exports/{name}')}",
    ]
    if has_password(opts.storage_url):
        lines.append(f"  ({PASSWORD_NOTE})")
    return lines


def install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C: Optuna marks the running trial FAIL and the study can resume."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    optuna.logging.set_verbosity(optuna.logging.INFO)


def execute(opts: RunOptions, workers: int = 1, verbose: bool = False) -> int:
    """Run the study in this process, or in ``workers`` local processes; returns the exit code.

    Problems a user can fix (bad data, a malformed study file, a study made on other data, an
    unreachable storage) end in one logged line rather than a traceback (``-v`` adds it).
    """
    try:
        check_workdir(opts.workdir)
        check_storage_url(opts.storage_url)
        if workers > 1:
            return run_local_workers(opts, workers)
        log.debug("torch uses %d intra-op threads", set_torch_threads(opts.threads))
        study = run_study(opts)
    except KeyboardInterrupt:
        log.warning("interrupted: a running trial is marked failed; run the same command to resume")
        return 130
    except (ValueError, StudyMismatchError) as exc:
        log.error("%s", exc, exc_info=verbose)
        return 2
    except GaveUp as exc:
        log.error("%s", exc)
        return 1
    except sqlalchemy.exc.OperationalError as exc:
        log.error("%s", storage_error(opts.storage_url, exc))
        return 1
    print_summary(study, opts)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    install_signal_handlers()
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        build_parser().error(str(exc))
    hide_secrets(opts.storage_url)
    quiet_expected_tracebacks()
    return execute(opts, args.workers, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
