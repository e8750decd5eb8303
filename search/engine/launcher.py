"""Several worker processes on one machine sharing one study: ``--workers N``.

    python -m search.run --study full --workers 4     # one process per GPU, or CPU processes

The parent opens (creates or resumes) the study, checks the data and builds the decoded-image
cache once; then it starts N processes with the 'spawn' context. With GPUs, each process sees
one GPU (``CUDA_VISIBLE_DEVICES`` is set in its environment before torch starts in it);
without, each gets ``cpus // N`` torch threads. SIGINT/SIGTERM are forwarded to the workers:
each marks its running trial FAIL and exits, and the next run resumes. A worker that dies
leaves its trial to the orphan reaper (search/storage/reaper.py).

The workers share the launcher's terminal, so none of them draws a progress bar: each writes one
log line per finished trial (search/engine/progress.py), and the launcher none. The time budget counts
from the launching command's start in every worker: each gets the launcher's ``RunPlan``
(search/engine/options.py), study file and budget resolved once, with its own device and index.

The workers use the run's storage, whatever their number: the processes of one machine can share
a SQLite file (each waits up to a minute for another's write, search/storage/backends.py), Optuna's
journal file or PostgreSQL. Workers on other machines (search/verbs/worker.py) need a journal on a
shared folder or PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna

from runners.devices import NUM_WORKERS_ENV
from search.engine.checks import GaveUp
from search.engine.options import RunPlan
from search.engine.prepare import open_study
from search.storage.reaper import reap_orphans, worker_tag
from search.engine.runstudy import print_summary, run_study
from search.storage.secretfilter import hide_secrets
from search.engine.signals import ignore_interrupts, install_interrupt_handlers
from search.storage.backends import STORAGE_ERRORS, redact, storage_error, takes_concurrent_writers
from search.studyfile.parse import cache_sizes
from search.engine.tracebackfilter import quiet_expected_tracebacks
from search.engine.trialbudget import count_trials
from search.engine.workercount import visible_gpus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSlot:
    """Where one local worker runs."""

    index: int
    device: str  # as the worker sees it: "cuda" (its one visible GPU) or "cpu"
    threads: int  # torch intra-op threads
    env: dict[str, str]  # set in the worker's environment before it starts


def plan_workers(
    n_workers: int,
    device: str = "auto",
    cpus: int | None = None,
    gpus: list[str] | None = None,
    threads: int | None = None,
) -> list[WorkerSlot]:
    """One slot per worker: a GPU each (round robin) when there are GPUs, else CPU threads
    (``threads`` each, default ``cpus // n_workers``)."""
    if n_workers < 1:
        raise ValueError(f"--workers must be at least 1 but got {n_workers}.")
    cpus = cpus or len(os.sched_getaffinity(0))
    gpus = visible_gpus() if gpus is None else gpus
    threads = threads or max(1, cpus // n_workers)
    base_env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if NUM_WORKERS_ENV not in os.environ:
        base_env[NUM_WORKERS_ENV] = str(max(0, min(4, threads - 1)))
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


def prepare_once(plan: RunPlan) -> optuna.Study:
    """Create or resume the study, check the data and build its image caches before any worker starts."""
    opts = plan.options
    study, data = open_study(
        plan.spec,
        plan.storage_url,
        opts.workdir,
        opts.data,
        opts.relabel,
        opts.name,
        opts.worker_index,
        plan.storage_settings,
    )
    for height, width, crop in cache_sizes(plan.spec):
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


def run_local_workers(plan: RunPlan) -> int:
    """Run the plan's ``workers`` processes on this machine on one study, in the run's storage; 0
    when all of them succeeded.

    Returns 130 when interrupted (every worker stopped cleanly), 1 when a worker failed or died.
    Every worker gets the plan (study file read once), with its own device and index.
    """
    url, n_workers, spec = plan.storage_url, plan.workers, plan.spec
    hide_secrets(url)
    slots = plan_workers(n_workers, plan.options.device, threads=plan.options.threads)
    study = prepare_once(plan)
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
            child = plan.for_worker(slot.index, slot.device)  # one terminal, N processes: log lines, no bars
            with _environment(slot.env):
                proc = ctx.Process(target=_worker_process, args=(child, slot, level), name=f"worker-{slot.index}")
                proc.start()
            procs.append(proc)
        codes = _wait(procs, study)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    failed = failed_workers(codes, forwarded=signals)
    for index, code in failed.items():
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        log.error("worker %d %s; see its log above", index, how)
    log.info("study %s: %d finished trials (budget %d)", study.study_name, count_trials(study), spec.n_trials)
    if failed:
        return 1
    if signals or any(c == 130 for c in codes.values()):
        log.warning("interrupted: run the same command to resume")
        return 130
    print_summary(study, plan)
    return 0


def failed_workers(codes: dict[int, int], forwarded: list[int]) -> dict[int, int]:
    """The workers that failed, by exit code. 0 and 130 are clean ends; so is death by SIGINT or
    SIGTERM after this launcher forwarded a stop: it landed while the worker was shutting down,
    where Python turns an uncaught KeyboardInterrupt into death by SIGINT."""
    stopped = {0, 130} | ({-signal.SIGINT, -signal.SIGTERM} if forwarded else set())
    return {i: c for i, c in codes.items() if c not in stopped}


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


def _worker_process(plan: RunPlan, slot: WorkerSlot, level: int) -> None:
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
    hide_secrets(plan.storage_url)
    quiet_expected_tracebacks()
    install_interrupt_handlers()
    code = 0
    try:
        import torch

        torch.set_num_threads(slot.threads)
        log.info("worker %d (%s) on %s, %d threads", slot.index, worker_tag(), slot.device, slot.threads)
        run_study(plan)
        ignore_interrupts()
    except KeyboardInterrupt:
        log.warning("worker %d interrupted: its running trial is marked failed", slot.index)
        code = 130
    except GaveUp as exc:
        log.error("worker %d: %s", slot.index, exc)
        code = 1
    except STORAGE_ERRORS as exc:
        log.error("worker %d: %s", slot.index, storage_error(plan.storage_url, exc))
        code = 1
    except Exception:
        log.exception("worker %d failed", slot.index)
        code = 1
    ignore_interrupts()
    logging.shutdown()
    sys.exit(code)
