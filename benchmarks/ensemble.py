"""What ensemble selection buys: best single trial, top-3 / top-5 soft vote and the selected ensemble.

By default the script runs a small, diverse study on the bench (three tiny backbones, age
cutoffs, focal gamma, learning rate, augmentation; no pruner, so every trial is a candidate)
into runs/benchmarks/ensemble (resumable: a second run with the same settings reuses its
trials), then runs ``search.ensembling.run_procedure``: members chosen on one half of the
validation people and scored on the other (both ways, averaged), the in-sample score on all
validation people, and the score on the bench's eval labels (people no trial has seen). Pass
``--study`` (with ``--storage``/``--workdir``) to measure an existing study instead.

    python -m benchmarks.ensemble
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from runners import resolve_device
from search.ensembling.candidates import load_candidates
from search.ensembling.evalscore import find_eval_labels, score_on_eval
from search.ensembling.honest import METHODS
from search.ensembling.procedure import run_procedure
from search.ensembling.selection import SelectionSettings
from search.engine.options import RunOptions
from search.engine.runstudy import run_study

log = logging.getLogger("benchmarks.ensemble")
NAME = "ensemble"


def study_doc(args: Any) -> dict[str, dict[str, Any]]:
    return {
        "study": {"description": "ensemble benchmark: a small diverse study", "n_trials": args.trials,
                  "keep_top": args.trials},
        "sampler": {"name": "tpe", "seed": args.sampler_seed, "n_startup_trials": max(1, args.trials // 2)},
        "pruner": {"name": "none"},
        "split": {"val_fraction": 0.2, "seed": 0},
        "fixed": {"pretrained": False, "height": args.height, "width": args.width, "crop": "face",
                  "epochs": args.epochs, "patience": 2, "batch_size": args.batch_size, "warmup_epochs": 0.0,
                  "seed": 0},
        "params": {
            "backbone": [b.strip() for b in args.backbones.split(",") if b.strip()],
            "age_cutoff": [58, 59, 60],
            "focal_gamma": {"low": 0.0, "high": 3.0},
            "lr": {"low": 1e-3, "high": 3e-2, "log": True},
            "augment": ["none", "flip"],
        },
    }


def run_own_study(args: Any, device: str) -> tuple[str, str, Path, Path, float]:
    """(study name, storage URL, workdir, bench, seconds) of the script's own study."""
    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)
    doc = study_doc(args)
    key = hashlib.sha256(json.dumps([doc, str(bench.resolve())], sort_keys=True).encode()).hexdigest()[:10]
    workdir = args.workdir or common.RUNS_DIR / "ensemble"
    toml = common.write_toml(workdir / f"ensemble_{key}.toml", doc)
    storage = f"sqlite:///{workdir / 'studies.db'}"
    log.info("study ensemble_%s: %d trials x %d epochs into %s (reused when already run)", key, args.trials,
             args.epochs, workdir)
    start = time.perf_counter()
    study = run_study(RunOptions(study=str(toml), data=bench, workdir=workdir, storage=storage, device=device))
    return study.study_name, storage, workdir, bench, time.perf_counter() - start


def members(outcome: Any, method: str) -> str:
    choice = outcome.choice(method)
    return ", ".join(f"#{outcome.candidates[m].number} {outcome.candidates[m].config.get('backbone')} ({w:.2f})"
                     for m, w in zip(choice.members, choice.weights, strict=True))


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=300, size=(96, 128))
    p.add_argument("--study", help="measure this existing study instead of running one")
    p.add_argument("--storage", help="its Optuna storage URL (default: sqlite:///<workdir>/studies.db)")
    p.add_argument("--workdir", type=Path, help="its work folder (default: the one the study recorded); without "
                                                "--study, where the script's own study goes (runs/benchmarks/ensemble)")
    p.add_argument("--backbones", default="test_resnet,test_efficientnet,test_convnext",
                   help="searched backbones of the script's own study")
    p.add_argument("--trials", type=common.positive_int, default=12)
    p.add_argument("--epochs", type=common.positive_int, default=4)
    p.add_argument("--height", type=common.positive_int, default=64)
    p.add_argument("--width", type=common.positive_int, default=48)
    p.add_argument("--batch-size", type=common.positive_int, default=32)
    p.add_argument("--sampler-seed", type=int, default=0)
    p.add_argument("--max-members", type=common.positive_int, default=SelectionSettings.max_members)
    p.add_argument("--max-per-backbone", type=int, default=2, help="0 = no cap")
    p.add_argument("--mode", choices=("cv", "split"), default="cv", help="honest estimate (search.ensemble)")
    p.add_argument("--no-eval", action="store_true", help="skip the bench's eval labels")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    logging.getLogger("search").setLevel(logging.WARNING)
    device = resolve_device(args.device)
    machine = common.machine(device)
    study_seconds = None
    if args.study:
        name, storage, workdir = args.study, args.storage, args.workdir
    else:
        name, storage, workdir, _, study_seconds = run_own_study(args, str(device))
    settings = SelectionSettings(max_members=args.max_members, max_per_backbone=args.max_per_backbone or None)
    pool = load_candidates(name, storage, workdir)
    outcome = run_procedure(pool, settings, args.mode, seed=0)
    data_root = pool.attrs.data_root
    if not args.no_eval and find_eval_labels(data_root) is not None:
        outcome.eval_scores = score_on_eval(outcome.candidates, outcome.final, Path(data_root),
                                            pool.workdir / "cache", device=str(device))
    elif not args.no_eval:
        log.warning("no eval labels beside %s (only the synthetic bench has them); eval column skipped", data_root)

    held_out = {s.method: s.macro_f1 for s in outcome.honest.scores}
    best = held_out[METHODS[0]]
    rows = []
    for method in METHODS:
        ev = outcome.eval_scores[method][0] if outcome.eval_scores else None
        rows.append([method, held_out[method], f"{held_out[method] - best:+.4f}", outcome.in_sample[method][0],
                     "-" if ev is None else ev,
                     "-" if ev is None else f"{ev - outcome.eval_scores[METHODS[0]][0]:+.4f}",
                     members(outcome, method)])
    print(f"\nEnsemble: study {name}, {len(outcome.candidates)} candidate trials at {outcome.sizes_text()}; held-out = members chosen on one half of "
          f"the validation people, scored on the other ({outcome.honest.mode}); device {device}")
    print(common.describe_machine(machine) + "\n")
    print(common.table(["method", "held-out macro-F1", "vs best single", "in-sample (all val)",
                        "bench eval macro-F1", "eval vs best single", "members (final choice, weights)"], rows))
    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "verbose"}
    inputs.update(study=name, storage=storage, data_root=data_root,
                  study_file=None if args.study else study_doc(args), study_seconds=study_seconds)
    notes = list(outcome.notes)
    path = common.save_result(NAME, inputs=inputs, figures=outcome.to_dict(), machine_info=machine, notes=notes,
                              results_dir=args.results_dir)
    print(f"\nsaved {path}")
    return outcome.to_dict()


if __name__ == "__main__":
    main()
