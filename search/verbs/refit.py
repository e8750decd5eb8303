"""``python -m search.refit --study FILE|--name NAME --trials 12 17 | --top N [--folds [K]] [--all-people]``.

Retrains chosen trials' exact configurations on K person folds (each model on K-1 folds,
predicting the fold it never saw) and/or on every person, for the epochs the trial chose.
The out-of-fold predictions score the trial honestly over every person. A killed or
time-limited refit is resumed by running the same command: only the missing models train.
``python -m search.ensemble`` and ``python -m search.export`` then take the fold groups as
members and the all-people weights in place of their trials' checkpoints.

What the refit needs of the study (its data, split, work folder, and K for a bare ``--folds``)
comes from what the stored study recorded when ``search.run`` created it (``StudyAttrs``), not
from the study file as it is now: an edited study file does not change what a study's refit is.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.engine.budget import RefitBudget
from search.cli.studyargs import add_study_args, study_ref
from search.refitting.progress import refit_progress
from search.refitting.store import RefitError
from search.refitting.train import (
    refit_table as table,
    DEFAULT_EPOCHS,
    EPOCH_RULES,
    RefitContext,
    all_work,
    choose_trials,
    fold_work,
    open_refit,
    refit_all,
    refit_folds,
)

SUMMARY = "retrain chosen trials on K person folds or on all people"

log = logging.getLogger("search.refit")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m search.refit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_study_args(p, workdir_default=None)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trials", type=int, nargs="+", metavar="N", help="trial numbers to refit")
    which.add_argument("--top", type=int, metavar="N", help="refit the N best complete trials")
    p.add_argument(
        "--folds",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="K",
        help="refit on K person folds (default K: the study file's [split] folds)",
    )
    p.add_argument(
        "--all-people", action="store_true", help="refit on every person (replaces the trial's checkpoint)"
    )
    p.add_argument(
        "--epochs",
        choices=EPOCH_RULES,
        default=DEFAULT_EPOCHS,
        help="ran: every epoch the trial ran (default); best: its best epoch's count",
    )
    p.add_argument("--timeout", type=float, dest="timeout_s", help="time budget in seconds for this run")
    p.add_argument("--device", help="cpu, cuda, ... (default: the best available)")
    p.add_argument("--augment-on", choices=("auto", "loader", "device"), help="where augmentation runs")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: search.common.threads' rule)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def study_folds(ctx: RefitContext, study_file: Path | None = None) -> int:
    """K for a bare ``--folds``: the ``[split] folds`` the stored study recorded at its creation (0
    when unset), which wins over its study file as it is now. Only a study recorded before that
    record existed reads it from ``study_file`` (--study), else from the file the study recorded."""
    if ctx.attrs.folds is not None:
        return ctx.attrs.folds
    from search.studyfile.parse import load_study_spec

    path = str(study_file) if study_file is not None else ctx.attrs.study_file
    if not path or not Path(path).is_file():
        raise RefitError(
            f"study {ctx.study.study_name!r} recorded the study file {path!r}, which is not there to read "
            "[split] folds from; pass --folds K."
        )
    return load_study_spec(path, ctx.attrs.profile).split.folds


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.folds is None and not args.all_people:
        raise RefitError("say what to refit: --folds [K] (K person folds), --all-people, or both.")
    if args.timeout_s is not None and not args.timeout_s > 0:
        raise RefitError(f"--timeout must be a number of seconds > 0 but got {args.timeout_s}.")
    ref = study_ref(args)
    ctx = open_refit(ref.name, args.storage, args.workdir)
    k = args.folds
    if k == 0:
        k = study_folds(ctx, ref.study_file)
        if k == 0 and ctx.attrs.folds is not None:
            raise RefitError(
                f"study {ref.name!r} was created from a study file with no [split] folds "
                f"({ctx.attrs.study_file}); pass --folds K (K >= 2)."
            )
        if k == 0:
            raise RefitError(
                f"{ctx.attrs.study_file} sets no [split] folds; add folds = K (K >= 2) "
                "to its [split] table, or pass --folds K."
            )
    if k is not None and k < 2:
        raise RefitError(f"--folds must be at least 2 but got {k}.")
    trials = choose_trials(ctx.study, args.trials or (), args.top)
    budget = RefitBudget(args.timeout_s)
    work = [fold_work(ctx, t, k, args.epochs) for t in trials if k is not None]
    work += [all_work(ctx, t, args.epochs) for t in trials if args.all_people]
    progress = refit_progress(
        sum(w.models for w in work), sum(w.epochs for w in work), sum(w.seconds for w in work)
    )
    reports = []
    with progress.showing():
        for trial in trials:
            if k is not None:
                reports.append(
                    refit_folds(ctx, trial, k, args.epochs, budget, args.device, args.augment_on, progress)
                )
            if args.all_people:
                reports.append(refit_all(ctx, trial, args.epochs, budget, args.device, args.augment_on, progress))
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.threads is not None and args.threads < 1:
        log.error("--threads must be a whole number >= 1 but got %s.", args.threads)
        return 2
    from search.common.threads import set_torch_threads

    set_torch_threads(args.threads)
    start = time.monotonic()
    try:
        reports = run(args)
    except (RefitError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc, exc_info=args.verbose)
        return 2
    print(table(reports))
    unfinished = [r for r in reports if not r["complete"]]
    print(f"\n{time.monotonic() - start:.0f} s.", end=" ")
    if unfinished:
        print("Some models did not fit in the time budget: run the same command again to train only those.")
        return 3
    print("Next: python -m search.ensemble / python -m search.export take the refits as members.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
