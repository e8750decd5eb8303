"""Replay pruning rules on recorded learning curves, without training again.

Reads the unpruned studies of one or more ``benchmarks.pruning`` results (each trial's
macro-F1 per epoch, kept in their JSON) and feeds every seed's trials, in their order, through
a fresh in-memory Optuna study whose pruner is built by ``search.studyfile.pruners.make_pruner``, as the
objective drives it: report each epoch, ask ``should_prune`` after every epoch but the last,
stop there if told to. A stopped trial counts the epochs it reported; a complete one has its
best epoch as its value. Figures per rule: the best complete value, the epochs spent, and
whether the unpruned study's best trial survived, against the unpruned study of the same seed.
``--signal val_loss`` shows the pruner each epoch's validation loss (negated, so higher is
better) instead of its macro-F1, while trials are still valued by their best macro-F1: a test
of whether the smoother loss ranks trials earlier than F1 does.

What replay leaves out: the sampler. The trials are the unpruned study's, so every rule is
judged on the same configurations; in a real pruned study TPE, told less by a pruned trial,
samples differently afterwards. Replay screens rules cheaply; ``benchmarks.pruning`` measures
the chosen one for real.

    python -m benchmarks.pruning_replay benchmarks/results/pruning.json \\
        --rules median "percentile:percentile=40" "hyperband:min_resource=2"
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks import common, pruning
from search.studyfile.pruners import PRUNING_SIGNALS, PrunerSpec, check_pruner, make_pruner, reported_value
from search.storage.trial_attrs import TrialAttrs
from search.studyfile.parse import StudyFileError

NAME = "pruning_replay"
DEFAULT_RULES = ("hyperband", "successive_halving", "median")


@dataclass(frozen=True)
class Rule:
    """One pruning rule as written on the command line: ``NAME[:key=value,...]`` over ``PrunerSpec``."""

    label: str
    spec: PrunerSpec


def parse_rule(text: str) -> Rule:
    """``median`` or ``percentile:percentile=40,min_resource=2``; unset keys take the benchmark's defaults."""
    name, _, rest = text.strip().partition(":")
    if name not in pruning.PRUNER_SETTINGS:
        raise argparse.ArgumentTypeError(f"rule {text!r}: unknown pruner {name!r}; expected one of "
                                         f"{sorted(pruning.PRUNER_SETTINGS)}")
    spec = PrunerSpec(**pruning.PRUNER_SETTINGS[name])
    keys = {f.name for f in fields(PrunerSpec)} - {"name"}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in keys:
            raise argparse.ArgumentTypeError(f"rule {text!r}: expected key=value with a key from "
                                             f"{sorted(keys)}, got {item!r}")
        try:
            parsed: Any = float(value) if key == "percentile" else int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"rule {text!r}: {key} must be a number, got {value!r}") from None
        spec = replace(spec, **{key: parsed})
    try:
        check_pruner(spec, f"rule {text!r}")
    except StudyFileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Rule(label=text.strip(), spec=spec)


@dataclass(frozen=True)
class RecordedStudy:
    """The unpruned study of one seed of a pruning result: its trials' curves, in trial order."""

    source: str  # "<file>:seed <n>"
    seed: int  # the sampler seed of the recorded study
    curves: list[list[float]]  # macro-F1 per epoch
    val_losses: list[list[float | None]]  # validation cross-entropy per epoch (None: not recorded)
    epochs: int
    best_macro_f1: float


def load_recorded(path: Path) -> list[RecordedStudy]:
    """The unpruned studies in a ``benchmarks.pruning`` result; a clear error for a file that has none to replay."""
    try:
        doc = json.loads(Path(path).read_text())
        rows = doc["figures"]["per_seed"]
        epochs = int(doc["inputs"]["epochs"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not a benchmarks.pruning result ({type(exc).__name__}: {exc}).") from None
    out = []
    for row in rows:
        if row.get("pruner") != "none":
            continue
        where = f"{path}:seed {row['seed']}"
        curves = row.get("curves")
        if not curves:
            raise SystemExit(f"{where}: no learning curves saved (results from before the curves were kept); "
                             "run python -m benchmarks.pruning again to record them.")
        curves = sorted(curves, key=lambda c: c["number"])
        values = [[float(v) for v in c["macro_f1"]] for c in curves]
        if any(len(v) != epochs for v in values):
            raise SystemExit(f"{where}: an unpruned trial reported fewer than {epochs} epochs (did it fail?); "
                             "replay needs every trial's whole curve.")
        best = max(max(v) for v in values)
        if not math.isclose(best, row["best_macro_f1"], abs_tol=1e-9):
            raise SystemExit(f"{where}: the curves' best ({best:.6f}) is not the recorded best "
                             f"({row['best_macro_f1']:.6f}); the file is inconsistent.")
        losses = [list(c.get("val_loss") or [None] * epochs) for c in curves]
        out.append(RecordedStudy(where, int(row["seed"]), values, losses, epochs, best))
    if not out:
        raise SystemExit(f"{path}: holds no unpruned study to replay.")
    return out


def shown(study: RecordedStudy, signal: str) -> list[list[float]]:
    """What the pruner is shown per trial and epoch: macro-F1, or the negated validation loss."""
    if signal == "macro_f1":
        return study.curves
    if any(v is None for losses in study.val_losses for v in losses):
        raise SystemExit(f"{study.source}: validation losses were not recorded for every epoch; "
                         "use --signal macro_f1 or a result from the current benchmarks.pruning.")
    return [[reported_value(signal, f1, float(loss)) for f1, loss in zip(f1s, losses, strict=True)]  # type: ignore[arg-type]
            for f1s, losses in zip(study.curves, study.val_losses, strict=True)]


def replay(study: RecordedStudy, spec: PrunerSpec, signal: str = "macro_f1") -> dict[str, Any]:
    """The study under ``spec``'s pruner; the same keys as ``benchmarks.pruning.summarise`` plus ``kept_best``."""
    # Named as benchmarks.pruning names its studies: Hyperband picks a trial's bracket from a hash of
    # the study name and trial number, so the replay puts each trial in the bracket it had there.
    optuna_study = optuna.create_study(study_name=f"prune_{spec.name}_s{study.seed}", direction="maximize",
                                       pruner=make_pruner(replace(spec, signal=signal), study.epochs))
    spent, states = [], []
    for curve, reported in zip(study.curves, shown(study, signal), strict=True):
        trial = optuna_study.ask()
        state = TrialState.COMPLETE
        for epoch, value in enumerate(reported, start=1):
            # As search.engine.objective reports: macro-F1 as the intermediate value, the signal in the curve.
            TrialAttrs.set(trial, pruning_curve=reported[:epoch])
            trial.report(curve[epoch - 1], epoch)
            if epoch < study.epochs and trial.should_prune():
                state = TrialState.PRUNED
                break
        spent.append(epoch)
        states.append(state)
        optuna_study.tell(trial, max(curve) if state == TrialState.COMPLETE else None, state=state)
    complete = [i for i, s in enumerate(states) if s == TrialState.COMPLETE]
    best = max(complete, key=lambda i: max(study.curves[i]), default=None)
    unpruned_best = max(range(len(study.curves)), key=lambda i: max(study.curves[i]))
    return {
        "best_macro_f1": max(study.curves[best]) if best is not None else None,
        "best_trial": best,
        "epochs_spent": sum(spent),
        "trials": len(study.curves),
        "complete": len(complete),
        "pruned": len(study.curves) - len(complete),
        "failed": 0,
        "epochs_per_trial": spent,
        "kept_best": states[unpruned_best] == TrialState.COMPLETE,
        "wall_seconds": 0.0,
    }


def replay_all(studies: Sequence[RecordedStudy], rules: Sequence[Rule], signal: str = "macro_f1") -> list[dict[str, Any]]:
    """Per recorded study, the unpruned reference and every rule, as ``benchmarks.pruning.seed_rows``."""
    rows: list[dict[str, Any]] = []
    for study in studies:
        results = {"none": replay(study, PrunerSpec(name="none"))}
        for rule in rules:
            results[rule.label] = replay(study, rule.spec, signal)
        rows += pruning.seed_rows(study.source, results)  # type: ignore[arg-type]  # a label, not a number
    return rows


def rule_table(summ: Mapping[str, Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for label, s in summ.items():
        if label == "none":
            continue
        mine = [r for r in rows if r["pruner"] == label]
        diffs = ", ".join(pruning._f(r["f1_diff"], "+.3f") for r in mine)
        out.append([label, pruning._f(s["mean_f1_diff"], "+.4f"), diffs,
                    pruning._f(None if s["mean_epoch_share"] is None else 100 * s["mean_epoch_share"], ".0f") + " %",
                    f"{sum(r['kept_best'] for r in mine)}/{len(mine)}", "met" if s["goal_met"] else "not met"])
    return common.table(["rule", "mean vs unpruned", "per study", "mean share of epochs", "kept the best trial",
                         f"goal (>= -{pruning.MAX_F1_DROP}, <= {100 * pruning.MAX_EPOCH_SHARE:.0f} %)"], out)


def build_parser() -> argparse.ArgumentParser:
    p = common.base_parser(NAME, __doc__)
    p.add_argument("results", nargs="+", type=Path, help="benchmarks.pruning result files (JSON with curves)")
    p.add_argument("--rules", nargs="+", type=parse_rule, default=[parse_rule(r) for r in DEFAULT_RULES],
                   help=f"NAME[:key=value,...] with keys of the study files' [pruner] table "
                        f"(default: {' '.join(DEFAULT_RULES)} with the pruning benchmark's settings)")
    p.add_argument("--signal", choices=PRUNING_SIGNALS, default="macro_f1",
                   help="what the pruner is shown each epoch (default macro_f1; the study files show val_loss)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup_logging(args.verbose)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    labels = [r.label for r in args.rules]
    if len(set(labels)) != len(labels) or "none" in labels:
        raise SystemExit(f"--rules: expected distinct rules other than none (always replayed), got {labels}")
    studies = [s for path in args.results for s in load_recorded(path)]
    rows = replay_all(studies, args.rules, args.signal)
    summ = pruning.summary(rows)

    print(f"\nPruning replay: {len(studies)} recorded unpruned studies ({sum(len(s.curves) for s in studies)} trials) "
          f"from {', '.join(map(str, args.results))}; the pruner is shown {args.signal}")
    print(f"command: {common.command_line()}\n")
    print(rule_table(summ, rows))
    inputs = {"results": [str(p) for p in args.results], "signal": args.signal,
              "rules": {r.label: {f.name: getattr(r.spec, f.name) for f in fields(PrunerSpec)} for r in args.rules}}
    notes = ["the sampler is not replayed: each rule sees the unpruned study's trials in their order",
             "epochs spent = epochs a trial reported before it was stopped; value of a complete trial = its best epoch",
             "kept_best: the unpruned study's best trial ran to the end under the rule"]
    figures = {"per_study": rows, "summary": summ}
    path = common.save_result(NAME, inputs=inputs, figures=figures, machine_info=common.machine(), notes=notes,
                              results_dir=args.results_dir)
    print(f"\nsaved {path}")
    return {**figures, "path": path}


if __name__ == "__main__":
    main()
