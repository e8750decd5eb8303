"""``python -m search.worker --study NAME --storage URL``: join a running study from any machine.

    # first box: create the study (and run trials on it)
    python -m search.run --study full --storage postgresql://automl@db-host/automl
    # every other box (same data, same study file): one more worker (a process per core or GPU), or --workers N
    python -m search.worker --study full --storage postgresql://automl@db-host/automl --data /data

The worker takes the same flags as ``search.run`` and runs the same loop: it resumes the
study (same name, same storage), checks that its data has the fingerprint the study was
created with, reads the study's person split, and runs trials until the budget, counted over
all workers, is reached. With PostgreSQL, a running trial sends a heartbeat every
``--heartbeat`` seconds; a trial silent for ``--grace`` seconds (its worker died) is marked
FAIL by the next worker that looks, and queued once more with the same parameters.

Each worker samples with the study's seed plus its ``--worker-index`` (default: drawn from
host and process id), so workers on different machines do not start with the same trials.
Checkpoints go to this machine's ``--workdir``: see the README about where to export.
"""

from __future__ import annotations

import argparse
import logging
import sys
import zlib
from collections.abc import Sequence

from search.engine.launcher import check_concurrent_storage
from search.storage.reaper import worker_tag
from search.engine.options import plan_run
from search.run import build_parser as run_parser, execute_plan, options_from_args, setup_run_logging
from search.storage.secretfilter import hide_secrets
from search.engine.signals import install_interrupt_handlers
from search.engine.tracebackfilter import quiet_expected_tracebacks
from search.engine.workercount import default_workers

SUMMARY = "join a running study from any machine (shared storage)"

log = logging.getLogger("search")


def build_parser() -> argparse.ArgumentParser:
    p = run_parser(prog="python -m search.worker")
    p.description = __doc__
    p.add_argument(
        "--worker-index",
        type=int,
        dest="worker_index",
        help="added to the sampler seed so workers sample differently (default: from host and pid)",
    )
    return p


def default_worker_index() -> int:
    """Distinct per host and process, and never 0 (the index of the process that created the study)."""
    return 1 + zlib.crc32(worker_tag().encode()) % 1_000_000


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.storage is None:
        parser.error(
            "--storage is required: the URL of the study's storage, e.g. "
            "postgresql://user@db-host/db (password in ~/.pgpass) or journal:///shared/path/study.journal"
        )
    if args.worker_index is None:
        args.worker_index = default_worker_index()
    setup_run_logging(args.verbose)
    try:
        opts = options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    hide_secrets(opts.storage_url)
    quiet_expected_tracebacks()
    workers = args.workers or default_workers(opts.device, threads=opts.threads)  # one per core or GPU
    try:
        plan = plan_run(opts, workers)  # the study file, read and validated once for the whole run
    except ValueError as exc:
        log.error("%s", exc, exc_info=args.verbose)
        return 2
    try:
        check_concurrent_storage(plan.storage_url, plan.workdir, plan.name, "python -m search.worker")
    except ValueError as exc:
        parser.error(str(exc))
    if workers == 1:  # with N > 1 the launcher handles signals and each child is a worker
        install_interrupt_handlers()
        log.info("worker %s joining study %s (worker index %d)", worker_tag(), plan.name, opts.worker_index)
    return execute_plan(plan, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
