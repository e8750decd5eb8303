"""What the pruner buys: the same small study with and without it.

Each study is written to a temporary study file: the same space, the same trial count, the same
sampler seed (TPE), the same trial seed and the same person split; only ``[pruner]`` differs.
Early stopping is off (patience = epochs) so only the pruner stops trials. Figures: best
validation macro-F1 of a complete trial, and the epochs spent (the sum over all trials of their
reported epochs, i.e. ``len(intermediate_values)``). Goal: within 0.01 of the unpruned best for
at most 40 % of its epochs.

    python -m benchmarks.pruning
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks import common
from runners import resolve_device
from search.run import RunOptions, run_study

log = logging.getLogger("benchmarks.pruning")
NAME = "pruning"
PRUNER_SETTINGS = {  # the project's studies use these (studies/full.toml, studies/smoke.toml)
    "hyperband": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
    "successive_halving": {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3},
    "median": {"name": "median", "min_resource": 1},
    "none": {"name": "none"},
}


def study_doc(args: Any, pruner: str) -> dict[str, dict[str, Any]]:
    fixed: dict[str, Any] = {
        "height": args.height, "width": args.width, "crop": "face", "epochs": args.epochs,
        "patience": args.epochs, "batch_size": args.batch_size, "warmup_epochs": 0.0, "seed": 0,
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
        "study": {"description": f"pruning benchmark, pruner {pruner}", "n_trials": args.trials, "keep_top": 1},
        "sampler": {"name": "tpe", "seed": args.sampler_seed, "n_startup_trials": args.startup_trials},
        "pruner": PRUNER_SETTINGS[pruner],
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
        "wall_seconds": seconds,
    }


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=300, size=(96, 128))
    p.add_argument("--pruners", default="hyperband,successive_halving",
                   help=f"pruned studies to compare with the unpruned one, from {sorted(PRUNER_SETTINGS)}")
    p.add_argument("--backbones", default="test_resnet,test_efficientnet", help="comma-separated timm names")
    p.add_argument("--packaged-weights", action="store_true",
                   help="pretrained tf_efficientnet_lite0 from the installed package (use --backbones tf_efficientnet_lite0)")
    p.add_argument("--trials", type=common.positive_int, default=16)
    p.add_argument("--epochs", type=common.positive_int, default=6)
    p.add_argument("--height", type=common.positive_int, default=64)
    p.add_argument("--width", type=common.positive_int, default=48)
    p.add_argument("--batch-size", type=common.positive_int, default=32)
    p.add_argument("--lr-low", type=float, default=1e-3)
    p.add_argument("--lr-high", type=float, default=3e-2)
    p.add_argument("--sampler-seed", type=int, default=0)
    p.add_argument("--startup-trials", type=common.positive_int, default=4, help="random trials before TPE")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--keep-workdir", action="store_true", help="keep the studies, artifacts and cache")
    common.add_work_root_arg(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    logging.getLogger("search").setLevel(logging.WARNING)
    pruners = [p.strip() for p in args.pruners.split(",") if p.strip()]
    unknown = [p for p in pruners if p not in PRUNER_SETTINGS or p == "none"]
    if not pruners or unknown:
        raise SystemExit(f"--pruners {args.pruners!r}: expected names from "
                         f"{sorted(set(PRUNER_SETTINGS) - {'none'})}, got {unknown or 'none'}")
    device = resolve_device(args.device)
    machine = common.machine(device)
    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)
    args.work_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pruning-", dir=args.work_root))
    studies: dict[str, dict[str, Any]] = {}
    try:
        for pruner in ["none", *pruners]:
            toml = common.write_toml(workdir / f"prune_{pruner}.toml", study_doc(args, pruner))
            opts = RunOptions(study=str(toml), data=bench, workdir=workdir, device=str(device),
                              storage=f"sqlite:///{workdir / 'studies.db'}")
            log.info("study with pruner %s: %d trials x %d epochs", pruner, args.trials, args.epochs)
            start = time.perf_counter()
            study = run_study(opts)
            studies[pruner] = summarise(study, time.perf_counter() - start)
            s = studies[pruner]
            log.info("pruner %s: best %.4f, %d epochs, %.0f s", pruner, s["best_macro_f1"] or 0.0,
                     s["epochs_spent"], s["wall_seconds"])
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    ref = studies["none"]
    rows, comparison = [], {}
    for pruner, s in studies.items():
        gap = (ref["best_macro_f1"] - s["best_macro_f1"]) if s["best_macro_f1"] is not None else None
        share = s["epochs_spent"] / ref["epochs_spent"]
        comparison[pruner] = {"f1_gap": gap, "epoch_share": share,
                              "goal_met": gap is not None and gap <= 0.01 and share <= 0.40}
        rows.append([pruner, s["best_macro_f1"], "-" if pruner == "none" else f"{gap:+.4f}", s["epochs_spent"],
                     f"{100 * share:.0f} %", f"{s['complete']}/{s['pruned']}/{s['failed']}", s["wall_seconds"],
                     "-" if pruner == "none" else ("yes" if comparison[pruner]["goal_met"] else "no")])
    print(f"\nPruning: {args.trials} trials x {args.epochs} epochs of {args.backbones} at {args.height}x{args.width}, "
          f"TPE seed {args.sampler_seed}, on {bench}; device {device}")
    print(common.describe_machine(machine) + "\n")
    print(common.table(["pruner", "best val macro-F1", "gap to unpruned", "epochs spent", "share of unpruned",
                        "complete/pruned/failed", "wall s", "goal (<=0.01, <=40 %)"], rows))
    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "verbose"}
    inputs.update(bench=str(bench), study_files={p: study_doc(args, p) for p in studies})
    notes = ["early stopping off (patience = epochs): only the pruner ends trials early",
             "best = best value of a COMPLETE trial; epochs spent = sum of len(intermediate_values) over all trials"]
    path = common.save_result(NAME, inputs=inputs, figures={"studies": studies, "comparison": comparison},
                              machine_info=machine, notes=notes, results_dir=args.results_dir)
    print(f"\nsaved {path}")
    return {"studies": studies, "comparison": comparison}


if __name__ == "__main__":
    main()
