"""``python -m search.ensemble --study FILE`` (or ``--name NAME``): choose a diverse ensemble and
score it honestly.

Prints, side by side, the best single trial, the plain top-3 and top-5 soft votes and the
ensemble (``--vote soft`` or ``hard``; selected with learned weights, or ``--weights`` given):
on held-out validation people (chosen on the other half; ``--mode cv``
does both halves and averages), on all validation people (in-sample, optimistic), and, on
the synthetic bench, on its eval labels. Saves the table as JSON in
<workdir>/trials/<study>/ensemble.json.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from search.common.atomic import write_json
from search.cli import report_error, setup_logging
from search.engine.track import check_installed, track_ensemble
from search.engine.track.records import ensemble_log
from search.ensembling.args import add_selection_args, outcome_from_args
from search.ensembling.evalscore import find_eval_labels, score_on_eval
from search.storage.trialstore import TrialStore

SUMMARY = "select a diverse soft-voting ensemble, with an honest score"

log = logging.getLogger("search.ensemble")


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        check_installed(args.track)
        outcome, workdir, attrs, ref = outcome_from_args(args)
        data_root = attrs.data_root
        if not args.no_eval and find_eval_labels(data_root) is not None:
            from search.deploy.graph import inference_device

            outcome.eval_scores = score_on_eval(
                outcome.candidates,
                outcome.final,
                Path(data_root),
                workdir / "cache",
                args.batch_size,
                inference_device(args.device),
            )
        out = TrialStore(workdir, ref.name).root / "ensemble.json"
        write_json(out, outcome.to_dict())
        if args.track:
            where = track_ensemble(args.track, workdir, ensemble_log(outcome, "search.ensemble"), args.track_to)
            log.info("ensemble logged to %s", where)
    except (ValueError, FileNotFoundError) as exc:
        return report_error(log, exc, args.verbose)
    h = outcome.honest
    print(
        f"study {ref.name}: {len(outcome.candidates)} candidate trial(s) at {outcome.sizes_text()}; "
        f"{outcome.vote.vote} vote, weights {'given' if outcome.vote.given else 'learned'}; held-out = "
        f"{'one half' if h.mode == 'split' else 'mean of both halves'} of the validation people "
        f"({h.folds[0]['score_people']} people), members chosen on the other half\n"
    )
    print(outcome.table())
    print("\nmembers listed: chosen on all validation people, as python -m search.export ships them")
    if outcome.vote.rule_method is not None:
        rule = outcome.choice(outcome.vote.rule_method)
        print(
            f"decision rule on all validation people: tau {rule.tau:.2f}, "
            f"old-band offset {rule.old_band_offset:+.2f}"
        )
    print(f"python -m search.export ships {outcome.shipped!r}: {outcome.why}; "
          f"estimate {outcome.estimate_text(outcome.shipped)}")
    if len(outcome.candidates) < 5:
        print(
            f"only {len(outcome.candidates)} candidate trial(s): a top-k vote with k above that uses them all"
        )
    for note in outcome.notes:
        log.info("note: %s", note)
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
