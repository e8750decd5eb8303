"""``python -m search.export --study FILE --out DIR`` (or ``--name NAME``): ship a study's ensemble
as a bundle.

The members are chosen on ALL validation people (the honest estimate, recorded beside, is
for this procedure: see ``python -m search.ensemble``), with the same selection and vote flags
(``--vote hard``, ``--weights 3=2,7=1``). Members may differ in input size and crop: each
takes its own inside the one graph. Writing the bundle (temporary folder, ONNX checks, rename
to DIR) is search/deploy/writer.py; the layout is described in search/deploy/manifest.py.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.cli import os_error_line, report_error, setup_logging
from search.deploy.manifest import Manifest
from search.deploy.writer import BundleSpec, MemberSource, check_out, write_bundle
from search.engine.track import check_installed, track_ensemble
from search.engine.track.records import ensemble_log
from search.ensembling.args import add_selection_args, outcome_from_args
from search.ensembling.procedure import Outcome

SUMMARY = "write a study's ensemble as a bundle (safetensors + ONNX)"

log = logging.getLogger("search.export")

RULE_CHOICES = ("auto", "on", "off")
MIN_OPSET = 7  # the oldest opset torch's TorchScript exporter writes


def opset_arg(text: str) -> int:
    """argparse type: an ONNX opset torch can write (a newer one than it knows fails at export)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < MIN_OPSET:
        raise argparse.ArgumentTypeError(f"expected an ONNX opset >= {MIN_OPSET} (default 17) but got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m search.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_selection_args(p, max_members=5)
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--opset", type=opset_arg, default=17, help=f"ONNX opset (default 17; from {MIN_OPSET})")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace DIR when it is an existing bundle (checked through its manifest); any other "
        "folder or file is refused and left alone",
    )
    p.add_argument(
        "--decision-rule",
        choices=RULE_CHOICES,
        default="auto",
        help="ship the macro-F1 decision offsets with a soft vote: auto (when the honest "
        "estimate says they help), on, or off (the plain argmax of the vote)",
    )
    return p


def shipped_method(outcome: Outcome, decision_rule: str = "auto") -> str:
    """The method a bundle ships. By default (``decision_rule`` "auto", no ``--weights``) the row of
    the comparison with the highest held-out macro-F1 (``Outcome.shipped``: best single, a top-k
    vote, the selected ensemble with or without the decision rule, or the fold groups' vote).
    With ``--weights`` the given ensemble, and with "on" or "off" the ensemble with or without the
    rule; with given weights, "auto" adds the rule when its held-out score is at least the plain
    vote's. A vote without a decision rule (hard, geometric: search.deploy.votes) makes "on" an
    error, and "auto" ships the plain vote."""
    if decision_rule not in RULE_CHOICES:
        raise ValueError(f"decision_rule must be one of {list(RULE_CHOICES)} but got {decision_rule!r}.")
    if decision_rule == "auto" and outcome.vote.given is None and outcome.shipped:
        return outcome.shipped
    plain, rule = outcome.vote.method, outcome.vote.rule_method
    if rule is None:
        if decision_rule == "on":
            raise ValueError(
                f"--decision-rule on shifts a soft vote's probabilities; with --vote {outcome.vote.vote} "
                "use auto or off."
            )
        return plain
    if decision_rule == "auto":
        return rule if outcome.honest.score(rule).macro_f1 >= outcome.honest.score(plain).macro_f1 else plain
    return rule if decision_rule == "on" else plain


def member_sources(outcome: Outcome, method: str) -> list[MemberSource]:
    """The chosen members of ``method`` with their checkpoints on disk."""
    choice = outcome.choice(method)
    sources = []
    for index, weight in zip(choice.members, choice.weights, strict=True):
        cand = outcome.candidates[index]
        files = cand.weight_files()  # a fold group (search.refit) is one member of its K models
        if not files or not all(f.is_file() for f in files):
            raise FileNotFoundError(
                f"weights of trial {cand.name} are missing ({files or cand.weights}); the study's retention "
                "deleted them or --workdir points elsewhere."
            )
        sources.append(
            MemberSource(
                cand.name,
                dict(cand.config),
                tuple(files),
                float(weight),
                cand.study,
                cand.number,
                cand.value,
            )
        )
    return sources


def export_bundle(
    outcome: Outcome,
    out: Path,
    opset: int = 17,
    overwrite: bool = False,
    extra: dict[str, Any] | None = None,
    decision_rule: str = "auto",
) -> Manifest:
    """Write the ensemble of ``outcome`` (with its decision offsets per ``decision_rule``) to
    ``out``; returns the manifest."""
    method = shipped_method(outcome, decision_rule)
    choice = outcome.choice(method)
    in_sample = outcome.in_sample[method]
    metrics = {
        "selection": {"macro_f1": in_sample[0], "accuracy": in_sample[1], "on": "all validation people"},
        "alternatives_in_sample": {
            m: {"macro_f1": v[0], "accuracy": v[1]} for m, v in outcome.in_sample.items()
        },
        "honest": outcome.honest.to_dict(),
        "shipped": {"method": method, "why": outcome.why if method == outcome.shipped else "asked for",
                    "estimate": dict(zip(("macro_f1", "on"), outcome.estimate(method), strict=True))
                    | {"sd_over_people": outcome.estimate_sd(method)}},
    }
    spec = BundleSpec(
        vote=choice.vote,
        weights_from="learned" if outcome.vote.given is None else "given",
        offsets=tuple(choice.offsets) if choice.offsets else None,
        rule={"tau": choice.tau, "old_band_offset": choice.old_band_offset} if choice.offsets else {},
        study=outcome.study,
        metrics=metrics,
        extra=dict(extra or {}),
        opset=opset,
    )
    return write_bundle(member_sources(outcome, method), Path(out), spec, overwrite)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        check_out(args.out, args.overwrite)  # before the selection: a refusal costs nothing
        check_installed(args.track)
        outcome, workdir, attrs, _ = outcome_from_args(args)
        extra = {
            "source": {"data_fingerprint": attrs.data_fingerprint, "data_root": attrs.data_root}
        }
        manifest = export_bundle(outcome, args.out, args.opset, args.overwrite, extra, args.decision_rule)
        if args.track:
            record = ensemble_log(outcome, "search.export", Path(args.out).resolve())
            print(f"ensemble logged to {track_ensemble(args.track, workdir, record, args.track_to)}")
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        return report_error(log, exc, args.verbose)
    except OSError as exc:  # a full disk, a read-only place: the writer removed its temporary folder
        log.error("%s; nothing was written to %s", os_error_line(exc, "writing the bundle"), args.out,
                  exc_info=args.verbose)
        return 1
    except KeyboardInterrupt:
        log.warning("interrupted: nothing was written to %s (the temporary folder was removed)", args.out)
        return 130
    sel = manifest.metrics["selection"]
    method = shipped_method(outcome, args.decision_rule)
    print(outcome.table())
    why = outcome.why if method == outcome.shipped else "asked for with --weights or --decision-rule"
    print(
        f"\nexported {method!r} ({why}): {len(manifest.members)} member(s), {manifest.vote} vote, input "
        f"{manifest.input.height}x{manifest.input.width} {manifest.input.crop}, to {args.out}: "
        f"validation macro-F1 {sel['macro_f1']:.4f} "
        f"(in-sample), honest estimate {outcome.estimate_text(method)}"
    )
    if manifest.offsets is not None:
        print(f"decision rule shipped: tau {manifest.rule.get('tau', 0.0):.2f}, "
              f"old-band offset {manifest.rule.get('old_band_offset', 0.0):+.2f}")
    print(f"predict with: python -m search.predict --bundle {args.out} --data EVAL_DIR")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
