"""The selection and vote flags of ``python -m search.ensemble`` and ``python -m search.export``,
and the procedure they run, so that both commands choose the same ensemble from the same flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from search.cli import add_verbose, positive_int
from search.cli.studyargs import StudyRef, add_study_args, study_ref
from search.engine.track import add_track_args
from search.ensembling.candidates import load_candidates
from search.ensembling.honest import MODES
from search.ensembling.procedure import Outcome, run_procedure
from search.ensembling.selection import SelectionSettings
from search.ensembling.votes import VOTES, VoteSpec, parse_weights


def add_selection_args(p: argparse.ArgumentParser, max_members: int = 5) -> None:
    """The study, selection and vote flags."""
    add_study_args(p, workdir_default=None)
    p.add_argument(
        "--extra-study",
        action="append",
        default=[],
        metavar="NAME",
        help="another stored study on the same data and split whose trials also compete (repeatable)",
    )
    p.add_argument("--max-members", type=positive_int, default=max_members, help="distinct trials in the ensemble")
    p.add_argument(
        "--max-picks", type=positive_int, default=20, help="greedy rounds (with replacement); weights = picks/total"
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
        "--vote",
        choices=VOTES,
        default="soft",
        help="; ".join(f"{name}: {VOTES.get(name).summary}" for name in VOTES),
    )
    p.add_argument(
        "--weights",
        metavar="TRIAL=W,...",
        help="ship these members with these weights instead of selecting them, e.g. 3=2,7=1 (trial "
        "numbers of the study) or age_cutoff#3=2; default: members and weights learned on the "
        "selection people",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default="cv",
        help="honest estimate: split (choose on one half of the people, score on the other) "
        "or cv (both ways)",
    )
    p.add_argument(
        "--old-band-offset",
        choices=("on", "off"),
        default="on",
        help="on: the decision rule also chooses where the old line falls, an offset on the six old "
        "classes fitted for macro-F1 with it; off: the prior's tau only",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the person halves")
    add_track_args(p)
    add_verbose(p)


def settings_from_args(args: argparse.Namespace) -> SelectionSettings:
    return SelectionSettings(
        max_members=args.max_members,
        max_picks=args.max_picks,
        max_per_backbone=args.max_per_backbone or None,
        max_per_age_cutoff=args.max_per_cutoff or None,
        disagreement=args.disagreement,
    )


def vote_from_args(args: argparse.Namespace, study: str) -> VoteSpec:
    given = None if args.weights is None else parse_weights(args.weights, study)
    return VoteSpec(args.vote, given, args.old_band_offset == "on")


def outcome_from_args(args: argparse.Namespace) -> tuple[Outcome, Path, dict[str, Any], StudyRef]:
    """The procedure's outcome for the command line, with the work folder, the study's
    attributes and which stored study it read."""
    ref = study_ref(args)
    vote = vote_from_args(args, ref.name)
    settings = settings_from_args(args)
    pool = load_candidates(ref.name, args.storage, args.workdir, args.extra_study)
    outcome = run_procedure(pool, settings, args.mode, args.seed, vote)
    return outcome, pool.workdir, pool.attrs, ref
