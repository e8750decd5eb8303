"""What the pruner buys: the same small study with and without it, over several sampler seeds.

For each sampler seed (TPE), each study is written to a temporary study file: the same space,
the same trial count, the same trial seed and the same person split; only ``[pruner]`` differs.
The pruned and unpruned studies of one seed still see different TPE histories (a pruned trial
tells TPE less than a complete one), so their best F1 differ partly by chance: the comparison
is repeated per seed and judged on the means. Early stopping is off (patience = epochs) so only
the pruner stops trials. ``--signal`` says what the pruned studies report to their pruner each
epoch: the validation loss as the study files do (``[pruner] signal``), or ``macro_f1``.

Figures per seed and pruner: best validation macro-F1 of a complete trial, and the epochs spent
(the sum over all trials of their reported epochs, i.e. ``len(intermediate_values)``). Summary
per pruner: mean best F1, mean difference to the unpruned best of the same seed (with its min
and max over seeds), mean share of the unpruned epochs. Goal: a mean difference of at least
-0.01 for a mean share of at most 40 %.

    python -m benchmarks.pruning --threads 1
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from benchmarks import common
from runners import resolve_device
from search.engine.options import RunOptions
from search.studyfile.pruners import PRUNING_SIGNALS
from search.engine.runstudy import run_study
from search.storage.trial_attrs import TrialAttrs

log = logging.getLogger("benchmarks.pruning")
NAME = "pruning"
# As search/studyfile/pruners.py's make_pruner reads them (it builds "median" as MedianPruner(n_startup_trials=2,
# n_warmup_steps=min_resource)); --min-resource replaces min_resource (the study files use 2).
PRUNER_SETTINGS = {
    "hyperband": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
    "successive_halving": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},
    "median": {"name": "median", "min_resource": 1},
    # The top third goes on, as with the halving pruners' reduction factor 3.
    "percentile": {"name": "percentile", "min_resource": 1, "percentile": 100 / 3},
    "none": {"name": "none"},
}
DEFAULT_PRUNERS = "hyperband,successive_halving,median"
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_EMA_DECAY = common.study_ema_decay()
DEFAULT_SIGNAL = common.study_pruning_signal()
MAX_F1_DROP, MAX_EPOCH_SHARE = 0.01, 0.40  # the goal (issue 7, point 3)
_EPS = 1e-9  # float rounding in the means (a mean of -0.01 may come out as -0.0100000000001)


def seeds_arg(text: str) -> list[int]:
    """argparse type: comma-separated, distinct whole numbers, e.g. ``0,1,2``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 0,1,2 but got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected at least one seed and no repeats but got {text!r}")
    return seeds


def selected_seeds(args: argparse.Namespace) -> list[int]:
    """The sampler seeds to run: ``--seeds``, or the single ``--sampler-seed`` (kept from the one-seed version)."""
    if args.seeds is not None and args.sampler_seed is not None:
        raise SystemExit(f"--seeds {','.join(map(str, args.seeds))} and --sampler-seed {args.sampler_seed} "
                         "both name sampler seeds; pass only one of them.")
    if args.sampler_seed is not None:
        return [args.sampler_seed]
    return list(args.seeds) if args.seeds is not None else list(DEFAULT_SEEDS)


def selected_pruners(args: argparse.Namespace) -> list[str]:
    pruners = [p.strip() for p in args.pruners.split(",") if p.strip()]
    unknown = [p for p in pruners if p not in PRUNER_SETTINGS or p == "none"]
    if not pruners or unknown or len(set(pruners)) != len(pruners):
        raise SystemExit(f"--pruners {args.pruners!r}: expected distinct names from "
                         f"{sorted(set(PRUNER_SETTINGS) - {'none'})} (the unpruned study always runs), "
                         f"got {unknown or pruners}")
    return pruners


def study_doc(args: argparse.Namespace, pruner: str, seed: int | None = None) -> dict[str, dict[str, Any]]:
    """The study file for one pruner and sampler seed (default: the first selected seed)."""
    seed = selected_seeds(args)[0] if seed is None else seed
    fixed: dict[str, Any] = {
        "height": args.height, "width": args.width, "crop": "face", "epochs": args.epochs,
        "patience": args.epochs, "batch_size": args.batch_size, "warmup_epochs": args.warmup_epochs, "seed": 0,
        "ema_decay": args.ema_decay,
    }
    if args.packaged_weights:
        fixed.update(pretrained=True, weights_dir="packaged")
    else:
        fixed["pretrained"] = False
    params: dict[str, Any] = {
        "age_cutoff": [58, 59, 60],
        "focal_gamma": {"low": 0.0, "high": 3.0},
        "lr": {"low": args.lr_low, "high": args.lr_high, "log": True},
        "augment": ["none", "flip"],
        "unfrozen_depth": {"low": 1, "high": "all"},
    }
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    if len(backbones) > 1:
        params["backbone"] = backbones
    else:
        fixed["backbone"] = backbones[0]
    return {
        "study": {"description": f"pruning benchmark, pruner {pruner}, sampler seed {seed}", "n_trials": args.trials,
                  "keep_top": 1},
        "sampler": {"name": "tpe", "seed": seed, "n_startup_trials": args.startup_trials},
        "pruner": PRUNER_SETTINGS[pruner] if pruner == "none" else {**PRUNER_SETTINGS[pruner],
                                                                     "min_resource": args.min_resource,
                                                                     "signal": args.signal},
        "split": {"val_fraction": 0.2, "seed": 0},
        "fixed": fixed,
        "params": params,
    }


def summarise(study: optuna.Study, seconds: float) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {
        "best_macro_f1": float(best.value) if best else None,
        "best_trial": best.number if best else None,
        "best_params": dict(best.params) if best else None,
        "epochs_spent": sum(len(t.intermediate_values) for t in trials),
        "trials": len(trials),
        "complete": len(complete),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "epochs_per_trial": [len(t.intermediate_values) for t in trials],
        # Each trial's learning curve, to replay other pruning rules offline without training again
        # (from its history: the intermediate values are whatever signal the pruner was shown).
        "curves": [{"number": t.number, "state": t.state.name, "params": dict(t.params),
                    "macro_f1": [h.get("val_macro_f1") for h in TrialAttrs.read(t).history],
                    "val_loss": [h.get("val_loss") for h in TrialAttrs.read(t).history]} for t in trials],
        "wall_seconds": seconds,
    }


def seed_rows(seed: int, studies: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per pruner of one seed, with its F1 difference and epoch share against ``studies["none"]``."""
    ref = studies["none"]
    rows = []
    for pruner, s in studies.items():
        both = s["best_macro_f1"] is not None and ref["best_macro_f1"] is not None
        diff = s["best_macro_f1"] - ref["best_macro_f1"] if both else None
        share = s["epochs_spent"] / ref["epochs_spent"] if ref["epochs_spent"] else None
        rows.append({"seed": seed, "pruner": pruner, **s, "f1_diff": diff, "epoch_share": share})
    return rows


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per pruner, over seeds: means (of best F1, F1 difference, epoch share, epochs, wall), the
    difference's min/max, outcome counts, and the goal judged on the means.

    A seed where a study had no complete trial leaves that pruner's F1 means undefined (None)
    and its goal not met: averaging over the other seeds would hide the failure.
    """
    out: dict[str, dict[str, Any]] = {}
    for pruner in dict.fromkeys(r["pruner"] for r in rows):
        mine = [r for r in rows if r["pruner"] == pruner]
        diffs = [r["f1_diff"] for r in mine]
        bests = [r["best_macro_f1"] for r in mine]
        shares = [r["epoch_share"] for r in mine]
        f1_known = None not in diffs and None not in bests
        share_known = None not in shares
        s: dict[str, Any] = {
            "seeds": [r["seed"] for r in mine],
            "mean_best_macro_f1": statistics.fmean(bests) if f1_known else None,
            "mean_f1_diff": statistics.fmean(diffs) if f1_known else None,
            "min_f1_diff": min(diffs) if f1_known else None,
            "max_f1_diff": max(diffs) if f1_known else None,
            "mean_epoch_share": statistics.fmean(shares) if share_known else None,
            "mean_epochs_spent": statistics.fmean(r["epochs_spent"] for r in mine),
            "complete": sum(r["complete"] for r in mine),
            "pruned": sum(r["pruned"] for r in mine),
            "failed": sum(r["failed"] for r in mine),
            "mean_wall_seconds": statistics.fmean(r["wall_seconds"] for r in mine),
        }
        if pruner != "none":
            s["goal_met"] = bool(f1_known and share_known and s["mean_f1_diff"] >= -MAX_F1_DROP - _EPS
                                 and s["mean_epoch_share"] <= MAX_EPOCH_SHARE + _EPS)
        out[pruner] = s
    return out


def _f(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def seed_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return common.table(
        ["seed", "pruner", "best val macro-F1", "vs unpruned", "epochs spent", "share of unpruned",
         "complete/pruned/failed", "wall s"],
        [[r["seed"], r["pruner"], _f(r["best_macro_f1"], ".4f"),
          "-" if r["pruner"] == "none" else _f(r["f1_diff"], "+.4f"), r["epochs_spent"],
          _f(None if r["epoch_share"] is None else 100 * r["epoch_share"], ".0f") + " %",
          f"{r['complete']}/{r['pruned']}/{r['failed']}", f"{r['wall_seconds']:.0f}"] for r in rows],
    )


def summary_table(summ: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for pruner, s in summ.items():
        none = pruner == "none"
        spread = "-" if none else f"{_f(s['min_f1_diff'], '+.4f')} .. {_f(s['max_f1_diff'], '+.4f')}"
        goal = "-" if none else ("met" if s["goal_met"] else "not met")
        share = None if s["mean_epoch_share"] is None else 100 * s["mean_epoch_share"]
        rows.append([pruner, _f(s["mean_best_macro_f1"], ".4f"), "-" if none else _f(s["mean_f1_diff"], "+.4f"),
                     spread, f"{s['mean_epochs_spent']:.1f}", _f(share, ".0f") + " %",
                     f"{s['complete']}/{s['pruned']}/{s['failed']}", f"{s['mean_wall_seconds']:.0f}", goal])
    return common.table(
        ["pruner", "mean best val macro-F1", "mean vs unpruned", "min .. max vs unpruned", "mean epochs spent",
         "mean share of unpruned", "complete/pruned/failed (all seeds)", "mean wall s",
         f"goal (mean vs unpruned >= -{MAX_F1_DROP}, mean share <= {100 * MAX_EPOCH_SHARE:.0f} %)"],
        rows,
    )


def build_parser() -> argparse.ArgumentParser:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=300, size=(96, 128))
    p.add_argument("--pruners", default=DEFAULT_PRUNERS,
                   help=f"pruned studies to compare with the unpruned one, from {sorted(set(PRUNER_SETTINGS) - {'none'})} "
                        f"(default {DEFAULT_PRUNERS})")
    p.add_argument("--signal", choices=PRUNING_SIGNALS, default=DEFAULT_SIGNAL,
                   help=f"what the pruned studies report to their pruner each epoch (default {DEFAULT_SIGNAL}, as the "
                        "study files; val_loss reports the validation cross-entropy, negated)")
    p.add_argument("--min-resource", type=common.positive_int, default=1,
                   help="first epoch at which the pruners may stop a trial (default 1; the study files use 2)")
    p.add_argument("--backbones", default="test_resnet,test_efficientnet", help="comma-separated timm names")
    p.add_argument("--packaged-weights", action="store_true",
                   help="pretrained tf_efficientnet_lite0 from the installed package (use --backbones tf_efficientnet_lite0)")
    p.add_argument("--trials", type=common.positive_int, default=24)
    p.add_argument("--epochs", type=common.positive_int, default=8, help="default 8: the age_cutoff study's GPU budget")
    p.add_argument("--height", type=common.positive_int, default=64)
    p.add_argument("--width", type=common.positive_int, default=48)
    p.add_argument("--batch-size", type=common.positive_int, default=32)
    p.add_argument("--ema-decay", type=float, default=DEFAULT_EMA_DECAY,
                   help=f"validate a moving average of the weights, as the study files do (default {DEFAULT_EMA_DECAY}; 0 = off)")
    p.add_argument("--warmup-epochs", type=float, default=0.0,
                   help="linear lr warm-up before the cosine decay (default 0; the study files use 0.5)")
    p.add_argument("--lr-low", type=float, default=1e-3)
    p.add_argument("--lr-high", type=float, default=3e-2)
    p.add_argument("--seeds", type=seeds_arg, default=None,
                   help=f"TPE sampler seeds, comma-separated; the whole comparison runs once per seed "
                        f"(default {','.join(map(str, DEFAULT_SEEDS))})")
    p.add_argument("--sampler-seed", type=int, default=None, help="one sampler seed (same as --seeds N)")
    p.add_argument("--startup-trials", type=common.positive_int, default=4, help="random trials before TPE")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--keep-workdir", action="store_true", help="keep the studies, artifacts and cache")
    common.add_work_root_arg(p)
    return p


def run_all(args: argparse.Namespace, seeds: Sequence[int], pruners: Sequence[str], bench: Path, device: Any,
            workdir: Path) -> list[dict[str, Any]]:
    """Every (seed, pruner) study in one storage and workdir (the image cache is shared); per-seed rows."""
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(seeds) * (1 + len(pruners)), desc="pruning studies", unit="study") as bar:
        for seed in seeds:
            studies: dict[str, dict[str, Any]] = {}
            for pruner in ["none", *pruners]:
                bar.set_postfix(seed=seed, pruner=pruner)
                toml = common.write_toml(workdir / f"prune_{pruner}_s{seed}.toml", study_doc(args, pruner, seed))
                opts = RunOptions(study=str(toml), data=bench, workdir=workdir, device=str(device),
                                  storage=f"sqlite:///{workdir / 'studies.db'}")
                start = time.perf_counter()
                study = run_study(opts)
                studies[pruner] = s = summarise(study, time.perf_counter() - start)
                log.info("seed %d, pruner %s: best %s, %d epochs, %d complete / %d pruned / %d failed, %.0f s",
                         seed, pruner, _f(s["best_macro_f1"], ".4f"), s["epochs_spent"], s["complete"], s["pruned"],
                         s["failed"], s["wall_seconds"])
                bar.update()
            rows += seed_rows(seed, studies)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    logging.getLogger("search").setLevel(logging.WARNING)
    seeds, pruners = selected_seeds(args), selected_pruners(args)
    device = resolve_device(args.device)
    machine = common.machine(device)
    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)
    args.work_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pruning-", dir=args.work_root))
    start = time.perf_counter()
    try:
        rows = run_all(args, seeds, pruners, bench, device, workdir)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.perf_counter() - start
    summ = summary(rows)

    print(f"\nPruning: {args.trials} trials x {args.epochs} epochs of {args.backbones} at {args.height}x{args.width}, "
          f"pruning signal {args.signal}, "
          f"TPE seeds {','.join(map(str, seeds))} ({args.startup_trials} random start-up trials), trial seed 0, "
          f"split seed 0, on {bench}; device {device}; {total:.0f} s in all")
    print(common.describe_machine(machine))
    print(f"command: {common.command_line()}\n")
    print("Per seed:\n" + seed_table(rows) + "\n")
    print(f"Summary over {len(seeds)} seed(s) (goal judged on the means):\n" + summary_table(summ))
    for pruner in pruners:
        s = summ[pruner]
        print(f"  {pruner}: goal {'MET' if s['goal_met'] else 'NOT MET'} (mean vs unpruned "
              f"{_f(s['mean_f1_diff'], '+.4f')}, needs >= -{MAX_F1_DROP}; mean share "
              f"{_f(None if s['mean_epoch_share'] is None else 100 * s['mean_epoch_share'], '.0f')} %, "
              f"needs <= {100 * MAX_EPOCH_SHARE:.0f} %)")

    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "verbose"}
    inputs.update(seeds=seeds, pruner_list=pruners, bench=str(bench),
                  study_files={p: study_doc(args, p, seeds[0]) for p in ["none", *pruners]})
    notes = ["early stopping off (patience = epochs): only the pruner ends trials early",
             "best = best value of a COMPLETE trial; epochs spent = sum of len(intermediate_values) over all trials",
             "f1_diff = pruned best - unpruned best of the same sampler seed (negative: the pruned study found less)",
             f"goal judged on the means over seeds: mean f1_diff >= -{MAX_F1_DROP}, mean epoch_share <= {MAX_EPOCH_SHARE}",
             "study_files shows the first seed's files; the others differ only in sampler.seed and the description",
             "median = MedianPruner(n_startup_trials=2, n_warmup_steps=min_resource) as search/studyfile/pruners.py builds it",
             "signal: what the pruned studies reported to their pruner (val_loss: the validation loss, negated); curves keep both"]
    figures = {"per_seed": rows, "summary": summ, "total_wall_seconds": total,
               "goal": {"max_f1_drop": MAX_F1_DROP, "max_epoch_share": MAX_EPOCH_SHARE, "judged_on": "means over seeds"}}
    path = common.save_result(NAME, inputs=inputs, figures=figures, machine_info=machine, notes=notes,
                              results_dir=args.results_dir)
    print(f"\nsaved {path}")
    return {**figures, "path": path}


if __name__ == "__main__":
    main()
