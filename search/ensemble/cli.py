"""``python -m search.ensemble --study NAME``: choose a diverse ensemble and score it honestly.

Prints, side by side, the best single trial, the plain top-3 and top-5 soft votes and the
selected ensemble: on held-out validation people (chosen on the other half; ``--mode cv``
does both halves and averages), on all validation people (in-sample, optimistic), and, on
the synthetic bench, on its eval labels. Saves the table as JSON in
<workdir>/trials/<study>/ensemble.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from search.ensemble.candidates import load_candidates
from search.ensemble.evalscore import find_eval_labels, score_on_eval
from search.ensemble.honest import MODES
from search.ensemble.procedure import Outcome, run_procedure
from search.ensemble.selection import SelectionSettings
from search.study_attrs import StudyAttrs
from search.trialstore import TrialStore

log = logging.getLogger("search.ensemble")


def add_selection_args(p: argparse.ArgumentParser, max_members: int = 5) -> None:
    """Selection flags shared with ``python -m search.export``."""
    p.add_argument("--study", required=True, help="study name in the storage")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///<workdir>/studies.db)")
    p.add_argument(
        "--workdir", type=Path, help="the study's work folder (default: the one the study recorded)"
    )
    p.add_argument(
        "--extra-study",
        action="append",
        default=[],
        metavar="NAME",
        help="another study on the same data and split whose trials also compete (repeatable)",
    )
    p.add_argument("--max-members", type=int, default=max_members, help="distinct trials in the ensemble")
    p.add_argument(
        "--max-picks", type=int, default=20, help="greedy rounds (with replacement); weights = picks/total"
    )
    p.add_argument(
        "--max-per-backbone", type=int, default=2, help="distinct members per backbone (0 = no cap)"
    )
    p.add_argument(
        "--max-per-cutoff", type=int, default=0, help="distinct members per training age cutoff (0 = no cap)"
    )
    p.add_argument(
        "--disagreement",
        type=float,
        default=0.0,
        help="bonus per unit of disagreement rate for a new member (0 = plain Caruana)",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="cv",
        help="honest estimate: split (choose on one half of the people, score on the other) "
        "or cv (both ways)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the person halves")
    p.add_argument("-v", "--verbose", action="store_true")


def settings_from_args(args: argparse.Namespace) -> SelectionSettings:
    return SelectionSettings(
        max_members=args.max_members,
        max_picks=args.max_picks,
        max_per_backbone=args.max_per_backbone or None,
        max_per_age_cutoff=args.max_per_cutoff or None,
        disagreement=args.disagreement,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m search.ensemble",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection_args(p)
    p.add_argument("--no-eval", action="store_true", help="skip scoring on the bench's eval labels")
    p.add_argument(
        "--device", default="auto", help="for predicting the bench's eval images: auto, cpu or cuda"
    )
    p.add_argument("--batch-size", type=int, default=64)
    return p


def outcome_from_args(args: argparse.Namespace) -> tuple[Outcome, Path, StudyAttrs]:
    pool = load_candidates(args.study, args.storage, args.workdir, args.extra_study)
    outcome = run_procedure(pool, settings_from_args(args), args.mode, args.seed)
    return outcome, pool.workdir, pool.attrs


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        outcome, workdir, attrs = outcome_from_args(args)
        data_root = attrs.data_root
        if not args.no_eval and find_eval_labels(data_root) is not None:
            from search.bundle import resolve_device

            outcome.eval_scores = score_on_eval(
                outcome.candidates,
                outcome.final,
                Path(data_root),
                workdir / "cache",
                args.batch_size,
                resolve_device(args.device),
            )
    except (ValueError, FileNotFoundError) as exc:
        log.error("%s", exc, exc_info=args.verbose)
        return 2
    out = TrialStore(workdir, args.study).root / "ensemble.json"
    write_json(out, outcome.to_dict())
    h = outcome.honest
    print(
        f"study {args.study}: {len(outcome.candidates)} candidate trial(s) at {outcome.preprocessing[0]}x"
        f"{outcome.preprocessing[1]} crop {outcome.preprocessing[2]}; held-out = "
        f"{'one half' if h.mode == 'split' else 'mean of both halves'} of the validation people "
        f"({h.folds[0]['score_people']} people), members chosen on the other half\n"
    )
    print(outcome.table())
    print("\nmembers listed: chosen on all validation people, as python -m search.export ships them")
    if len(outcome.candidates) < 5:
        print(
            f"only {len(outcome.candidates)} candidate trial(s): a top-k vote with k above that uses them all"
        )
    for note in outcome.notes:
        log.info("left out %s", note)
    print(f"saved {out}")
    return 0
