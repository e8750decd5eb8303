"""Several worker processes on one machine sharing one study: ``--workers N``.

    python -m search.run --study full --workers 4     # one process per GPU, or CPU processes

The parent opens (creates or resumes) the study, checks the data and builds the decoded-image
cache once; then it starts N processes with the 'spawn' context. With GPUs, each process sees
one GPU (``CUDA_VISIBLE_DEVICES`` is set in its environment before torch starts in it);
without, each gets ``cpus // N`` torch threads. SIGINT/SIGTERM are forwarded to the workers:
each marks its running trial FAIL and exits, and the next run resumes.

The workers share the launcher's terminal, so none of them draws a progress bar: each writes one
log line per finished trial (search/progress.py), and the launcher none. The time budget counts
from the launching command's start (``RunOptions.started_at``) in every worker.

The storage must take concurrent writers: Optuna's journal file (the default here,
``<workdir>/<study>.journal``) or PostgreSQL. Plain SQLite is refused.

A trial whose worker process died (SIGKILL, the OOM killer) would stay RUNNING forever in a
storage without heartbeats (the journal file). :func:`reap_orphans` fails such a trial when
its worker ran on this machine and its process is gone, and re-queues it once with the same
parameters through Optuna's retry callback: what the heartbeat does for PostgreSQL.

This module imports nothing from ``search.run`` at import time (``search.run`` imports it).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy.exc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

from search.checks import GaveUp
from search.objective import TrialFailed
from search.storage import (
    RetryCallback,
    StorageSettings,
    hide_secrets,
    no_experimental_warnings,
    redact,
    storage_error,
    takes_concurrent_writers,
)

if TYPE_CHECKING:
    from search.run import RunOptions
    from search.study import StudySpec

log = logging.getLogger(__name__)

WORKER_ATTR = "worker"  # trial user attribute: "host:pid" of the process that ran the trial
LOADER_WORKERS_ENV = "MASK_AUTOML_LOADER_WORKERS"  # runners.devices reads it
FORCE_AFTER_S = 2.0  # a second interrupt later than this after the first exits at once


# --- who runs a trial, and trials whose worker died -------------------------------------------


def worker_tag(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


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
        trial.set_user_attr(WORKER_ATTR, tag)
        if n_trials is not None:
            study = trial.study
            done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            ahead = sum(1 for t in running if t.number < trial.number)
            if done + ahead >= n_trials:
                reason = f"not run: the budget of {n_trials} trials is taken by finished and running trials"
                trial.set_user_attr("failure_reason", reason)
                log.info("trial %d %s", trial.number, reason)
                study.stop()
                raise TrialFailed(reason)
        return objective(trial)

    return run


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def has_heartbeat(study: optuna.Study) -> bool:
    """Whether Optuna itself fails this study's trials whose worker went silent."""
    return is_heartbeat_enabled(study._storage)


def reap_orphans(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker process on this machine no longer exists; re-queue each once.

    On every storage: with a heartbeat (PostgreSQL, SQLite) Optuna would fail such a trial only
    after its grace period, and a resume in the meantime counted it against the budget. Trials
    of other machines are still left to the heartbeat. Returns the numbers of the trials failed here.
    """
    storage = study._storage
    host = socket.gethostname()
    reaped: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = trial.user_attrs.get(WORKER_ATTR)
        if not isinstance(tag, str):
            continue
        tag_host, _, tag_pid = tag.rpartition(":")
        if tag_host != host or not tag_pid.isdigit() or _alive(int(tag_pid)):
            continue
        try:
            storage.set_trial_user_attr(
                trial._trial_id, "failure_reason", f"worker {tag} died during the trial"
            )
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another process reaped it first
        reaped.append(trial.number)
        failed = copy.deepcopy(storage.get_trial(trial._trial_id))
        failed.user_attrs = {k: v for k, v in failed.user_attrs.items() if k != "failure_reason"}
        with no_experimental_warnings():
            RetryCallback(max_retry=StorageSettings().max_retry)(study, failed)
        log.warning(
            "trial %d: its worker %s died; marked FAIL and queued once more with the same parameters",
            trial.number,
            tag,
        )
    return reaped


# --- interrupts and log hygiene in a worker process --------------------------------------------


def install_interrupt_handlers(force_after_s: float = FORCE_AFTER_S) -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt once, so Optuna marks the running trial FAIL.

    Ctrl-C reaches a local worker twice (from the terminal and forwarded by its launcher);
    repeats within ``force_after_s`` are ignored so they cannot cut the FAIL write short. A
    signal later than that exits at once (the trial is then left to the heartbeat or reaper).
    """
    first: list[float] = []

    def handler(signum: int, frame: object) -> None:
        now = time.monotonic()
        if not first:
            first.append(now)
            raise KeyboardInterrupt(f"signal {signum}")
        if now - first[0] > force_after_s:
            log.error("interrupted again: exiting without waiting for the running trial to be recorded")
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


class _NoExpectedTraceback(logging.Filter):
    """Optuna logs every FAIL trial with a traceback. For an interrupt, or a trial the objective
    classified (NaN, out of memory: the reason is in the message and the traceback in the
    trial's ``traceback`` user attribute), that is noise; with -v (DEBUG) it is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        expected = (KeyboardInterrupt, TrialFailed)
        if (
            record.exc_info
            and isinstance(record.exc_info[1], expected)
            and not log.isEnabledFor(logging.DEBUG)
        ):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_tracebacks() -> None:
    """Drop tracebacks of interrupts and classified trial failures from every log handler (idempotent)."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, _NoExpectedTraceback) for f in handler.filters):
                handler.addFilter(_NoExpectedTraceback())


# --- the launcher ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSlot:
    """Where one local worker runs."""

    index: int
    device: str  # as the worker sees it: "cuda" (its one visible GPU) or "cpu"
    threads: int  # torch intra-op threads
    env: dict[str, str]  # set in the worker's environment before it starts


def visible_gpus() -> list[str]:
    """GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` if set, else all GPUs."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()][:count]
    return [str(i) for i in range(count)]


def plan_workers(
    n_workers: int, device: str = "auto", cpus: int | None = None, gpus: list[str] | None = None
) -> list[WorkerSlot]:
    """One slot per worker: a GPU each (round robin) when there are GPUs, else CPU threads."""
    if n_workers < 1:
        raise ValueError(f"--workers must be at least 1 but got {n_workers}.")
    cpus = cpus or len(os.sched_getaffinity(0))
    gpus = visible_gpus() if gpus is None else gpus
    threads = max(1, cpus // n_workers)
    base_env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if LOADER_WORKERS_ENV not in os.environ:
        base_env[LOADER_WORKERS_ENV] = str(max(0, min(4, threads - 1)))
    if device == "cpu" or (device == "auto" and not gpus):
        return [WorkerSlot(i, "cpu", threads, dict(base_env)) for i in range(n_workers)]
    if device not in ("auto", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"--device for local workers must be auto, cpu, cuda or cuda:N but got {device!r}.")
    if not gpus:
        raise ValueError(f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu.")
    if device.startswith("cuda:"):
        index = device.removeprefix("cuda:")
        if not index.isdigit() or int(index) >= len(gpus):
            raise ValueError(
                f"--device {device} does not exist: {len(gpus)} GPU(s) visible ({', '.join(gpus)})."
            )
        assigned = [gpus[int(index)]] * n_workers
    else:
        assigned = [gpus[i % len(gpus)] for i in range(n_workers)]
    if n_workers > len(set(assigned)):
        log.warning(
            "%d workers share %d GPU(s); each needs memory for its own trial", n_workers, len(set(assigned))
        )
    return [
        WorkerSlot(i, "cuda", threads, {**base_env, "CUDA_VISIBLE_DEVICES": gpu})
        for i, gpu in enumerate(assigned)
    ]


def default_journal_url(workdir: Path, study_name: str) -> str:
    return f"journal://{(Path(workdir) / f'{study_name}.journal').resolve().as_posix()}"


def check_concurrent_storage(url: str, workdir: Path, study_name: str, what: str) -> None:
    if not takes_concurrent_writers(url):
        raise ValueError(
            f"{what} needs a storage that takes concurrent writers, but {redact(url)} is plain SQLite. "
            f"Use --storage {default_journal_url(workdir, study_name)} (one machine) or "
            "--storage postgresql://user:password@host/db (several machines)."
        )


def cache_sizes(spec: StudySpec) -> list[tuple[int, int, str]]:
    """Every (height, width, crop) the study's trials can ask for; empty if one is a range."""
    from spaces import Categorical

    values: dict[str, list[Any]] = {}
    for key in ("height", "width", "crop"):
        if key in spec.params and not isinstance(spec.params[key], Categorical):
            log.info(
                "%s is searched over a range: each size's image cache is built by the first trial using it",
                key,
            )
            return []
        values[key] = spec.choices(key)
    return [
        (int(h), int(w), str(c))
        for h, w, c in itertools.product(values["height"], values["width"], values["crop"])
    ]


def prepare_once(opts: RunOptions, spec: StudySpec) -> optuna.Study:
    """Create or resume the study, check the data and build its image caches before any worker starts."""
    from search.prepare import open_study

    study, data = open_study(
        spec,
        opts.storage_url,
        opts.workdir,
        opts.data,
        opts.relabel,
        opts.name,
        opts.worker_index,
        opts.storage_settings(),
    )
    for height, width, crop in cache_sizes(spec):
        data.images(height, width, crop)
    reap_orphans(study)
    return study


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """A spawned process inherits os.environ as it is when it starts."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_local_workers(opts: RunOptions, n_workers: int) -> int:
    """Run ``n_workers`` processes on this machine on one study; 0 when all of them succeeded.

    Returns 130 when interrupted (every worker stopped cleanly), 1 when a worker failed or died.
    """
    from search.run import print_summary, resolve_spec

    spec = resolve_spec(opts)
    name = opts.name or spec.name
    url = opts.storage or default_journal_url(opts.workdir, name)
    if n_workers > 1:
        check_concurrent_storage(url, opts.workdir, name, f"--workers {n_workers}")
    opts = dataclasses.replace(opts, storage=url, profile=spec.profile)
    hide_secrets(url)
    slots = plan_workers(n_workers, opts.device)
    study = prepare_once(opts, spec)
    log.info(
        "study %s: starting %d workers (%s) on %s",
        study.study_name,
        n_workers,
        ", ".join(
            f"w{s.index}: {s.device}{'' if s.device == 'cpu' else ' ' + s.env['CUDA_VISIBLE_DEVICES']}"
            for s in slots
        ),
        redact(url),
    )

    ctx = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.process.BaseProcess] = []
    signals: list[int] = []

    def forward(signum: int, frame: object) -> None:
        signals.append(signum)
        log.warning("signal %d: asking the workers to stop (their running trials are marked failed)", signum)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    level = logging.getLogger().getEffectiveLevel()
    try:
        for slot in slots:
            if signals:
                break
            child = dataclasses.replace(opts, device=slot.device, worker_index=opts.worker_index + slot.index,
                                        progress="log")  # one terminal, N processes: log lines, no bars
            with _environment(slot.env):
                proc = ctx.Process(
                    target=_worker_process, args=(child, slot, level), name=f"worker-{slot.index}"
                )
                proc.start()
            procs.append(proc)
        codes = _wait(procs, study)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    failed = {i: c for i, c in codes.items() if c not in (0, 130)}
    for index, code in failed.items():
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        log.error("worker %d %s; see its log above", index, how)
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    log.info("study %s: %d finished trials (budget %d)", study.study_name, finished, spec.n_trials)
    if failed:
        return 1
    if signals or any(c == 130 for c in codes.values()):
        log.warning("interrupted: run the same command to resume")
        return 130
    print_summary(study, opts)
    return 0


def _wait(procs: list[multiprocessing.process.BaseProcess], study: optuna.Study) -> dict[int, int]:
    """Join the workers as they end; after each, fail any trial it left RUNNING."""
    pending = {p.sentinel: i for i, p in enumerate(procs)}
    codes: dict[int, int] = {}
    while pending:
        for sentinel in multiprocessing.connection.wait(list(pending)):
            index = pending.pop(sentinel)  # type: ignore[call-overload]
            procs[index].join()
            codes[index] = procs[index].exitcode or 0
            if codes[index] != 0:
                reap_orphans(study)
    return codes


def _worker_process(opts: RunOptions, slot: WorkerSlot, level: int) -> None:
    """Entry point of a spawned worker: run the study; exit 0, 130 (interrupted) or 1."""
    os.environ.update(slot.env)
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s w{slot.index} %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()  # optuna's lines get this worker's prefix too
    optuna.logging.set_verbosity(max(logging.INFO, level))
    hide_secrets(opts.storage_url)
    quiet_expected_tracebacks()
    install_interrupt_handlers()
    code = 0
    try:
        import torch

        from search.run import run_study

        torch.set_num_threads(slot.threads)
        log.info("worker %d (%s) on %s, %d threads", slot.index, worker_tag(), slot.device, slot.threads)
        run_study(opts)
    except KeyboardInterrupt:
        log.warning("worker %d interrupted: its running trial is marked failed", slot.index)
        code = 130
    except GaveUp as exc:
        log.error("worker %d: %s", slot.index, exc)
        code = 1
    except sqlalchemy.exc.OperationalError as exc:
        log.error("worker %d: %s", slot.index, storage_error(opts.storage_url, exc))
        code = 1
    except Exception:
        log.exception("worker %d failed", slot.index)
        code = 1
    logging.shutdown()
    sys.exit(code)
