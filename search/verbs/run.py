"""``python -m search.run --study NAME``: create or resume a study and run its trials.

Without ``--data`` the synthetic bench is used (generated on first use under data/synthetic).
Running the same command again resumes the study up to its trial budget; ``--n-trials``
raises (or lowers) that budget, counted over all workers as finished (complete or pruned)
trials. It runs one trial process per core on a CPU, one per GPU (search/engine/workercount.py);
``--workers N`` runs N processes on this machine (see search/engine/launcher.py); more machines
join with ``python -m search.worker`` (see search/verbs/worker.py).

A study file's profile may also give each run a time budget, counted from the command's start
(the shipped studies: 8 minutes on a CPU); ``--timeout`` replaces it, ``--n-trials`` alone lifts
it (search/engine/budget.py). On a terminal a bar shows the study's progress (search/engine/progress.py).
When the study file's [refit] table is enabled, the best trials are then refitted on person folds
in the same time budget (search/refitting/phase.py; --no-refit skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna

from runners.devices import AUGMENT_PLACES
from search.cli import positive_int
from search.engine.budget import process_started_at
from search.engine.checks import GaveUp
from search.engine.launcher import run_local_workers
from search.engine.options import RunOptions, RunPlan, plan_run
from search.engine.prepare import StudyMismatchError
from search.refitting.phase import refit_phase
from search.engine.runstudy import print_summary, run_study
from search.storage.secretfilter import hide_secrets
from search.engine.signals import install_signal_handlers
from search.storage.backends import DEFAULT_WORKDIR, STORAGE_ERRORS, storage_error
from search.common.threads import set_torch_threads
from search.engine.tracebackfilter import quiet_expected_tracebacks
from search.engine.track import add_track_args

SUMMARY = "create or resume a study and run its trials"

# The command line only (its docstring is the --help text): the run itself is search/engine/runstudy.py,
# its options and the plan they resolve to search/engine/options.py, the local launcher
# search/engine/launcher.py.
log = logging.getLogger("search")


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
                        "profile's; --n-trials alone lifts it); a trial that would run past it is stopped after "
                        "an epoch and kept, scored by its best epoch")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--augment-on", choices=AUGMENT_PLACES, dest="augment_on",
                   help="where a trial's augmentation set runs: per image in the loader's worker processes, or "
                        "batched on the training device (default auto: the device on a GPU, the loader on a CPU)")
    p.add_argument("--seed", type=int, help="sampler seed (default: the study file's)")
    p.add_argument("--profile", choices=("cpu", "gpu"), help="study profile (default: from the device)")
    p.add_argument("--workers", type=positive_int,
                   help="trial processes on this machine (default: one per core on a CPU, each with one torch "
                        "thread; one per GPU); they share the storage (SQLite, journal or PostgreSQL)")
    p.add_argument("--heartbeat", type=int, dest="heartbeat_s",
                   help="PostgreSQL/SQLite storages: seconds between a trial's heartbeats (default 30)")
    p.add_argument("--grace", type=int, dest="grace_s",
                   help="seconds without a heartbeat before a trial is failed and retried (default 120)")
    p.add_argument("--threads", type=int,
                   help="torch intra-op threads; alone, one process with that many (default: 1 in each of the "
                        "per-core processes; in one process, the cores the loader's workers leave free)")
    p.add_argument("--no-refit", dest="refit", action="store_false",
                   help="skip the study file's [refit] phase: the search gets the whole time budget "
                        "(python -m search.refit refits by hand)")
    add_track_args(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def options_from_args(args: argparse.Namespace) -> RunOptions:
    fields = {f.name for f in dataclasses.fields(RunOptions)}
    return RunOptions(**{k: v for k, v in vars(args).items() if k in fields}, started_at=process_started_at())


def setup_run_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    optuna.logging.set_verbosity(optuna.logging.INFO)


def execute(opts: RunOptions, workers: int | None = 1, verbose: bool = False) -> int:
    """Run the study in this process, or in ``workers`` local processes (None: the default count,
    search/engine/workercount.py); returns the exit code.

    The options are resolved once into the run's plan (``plan_run``: the study file read and
    validated once), which every later step reads. Problems a user can fix (bad data, a malformed
    study file, a study made on other data, an unreachable storage) end in one logged line rather
    than a traceback (``-v`` adds it).
    """
    try:
        plan = plan_run(opts, workers)
    except ValueError as exc:
        log.error("%s", exc, exc_info=verbose)
        return 2
    log.debug("%d trial process(es) on this machine (search/engine/workercount.py)", plan.workers)
    return execute_plan(plan, verbose)


def execute_plan(plan: RunPlan, verbose: bool = False) -> int:
    """``execute`` for a resolved plan: the search, then the study file's [refit] phase."""

    def search_on() -> int:  # no fold group fits: the search takes the rest of the time budget
        return execute_plan(plan.without_refit(), verbose)

    try:
        if plan.workers > 1:
            return run_local_workers(plan) or refit_phase(plan, verbose, search_on=search_on)
        log.debug("torch uses %d intra-op threads", set_torch_threads(plan.options.threads))
        study = run_study(plan)
    except KeyboardInterrupt:
        log.warning("interrupted: a running trial is marked failed; run the same command to resume")
        return 130
    except (ValueError, StudyMismatchError) as exc:
        log.error("%s", exc, exc_info=verbose)
        return 2
    except GaveUp as exc:
        log.error("%s", exc)
        return 1
    except STORAGE_ERRORS as exc:  # unreachable, or a user without rights on the tables
        log.error("%s", storage_error(plan.storage_url, exc))
        return 1
    print_summary(study, plan)
    return refit_phase(plan, verbose, search_on=search_on)  # the study file's [refit]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_run_logging(args.verbose)
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
