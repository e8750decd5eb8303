"""Wall time of one trial through the harness against a bare loop on the same cached data.

Harness: ``search.engine.runstudy.run_study`` on a one-trial study file written to a temporary folder (fixed
parameters, no pruner): storage, study user attributes, person split, reporting every epoch,
artifacts (validation probabilities, confusion PNG), checkpoint (safetensors), retention, the
dashboard note. Bare: ``runners.fit`` called directly with the same TrialConfig on ImageSets of
the same memory-mapped cache, no reporter. Both run in this process, alternating (ABBA), after
one warm-up of each; the median of the repeats is the figure. The harness is timed twice: the
whole ``run_study`` call (study set-up included: loading and checking the layout, the split)
and the trial alone (Optuna's start/complete times).

    python -m benchmarks.harness_overhead
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from benchmarks import common
from runners import ImageSet, TrialConfig, fit, resolve_device
from search.data import image_cache, load_train, split_people
from search.engine.options import RunOptions
from search.engine.runstudy import run_study

log = logging.getLogger("benchmarks.harness_overhead")
NAME = "harness_overhead"


def trial_config(args: Any) -> TrialConfig:
    return TrialConfig(
        backbone=args.backbone, pretrained=False, height=args.height, width=args.width, crop="face",
        epochs=args.epochs, patience=args.epochs, batch_size=args.batch_size, lr=3e-3, augment="none",
        warmup_epochs=0.0, seed=0,
    )


def study_file(path: Path, config: TrialConfig) -> Path:
    fixed = {k: v for k, v in config.to_dict().items() if v is not None and k != "extra"}
    return common.write_toml(path, {
        "study": {"description": "harness overhead benchmark: one fixed trial", "n_trials": 1, "keep_top": 1},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "split": {"val_fraction": 0.2, "seed": 0},
        "fixed": fixed,
    })


class Bare:
    """runners.fit on the cache the harness uses (same file: same paths, size, crop and key)."""

    def __init__(self, bench: Path, workdir: Path, config: TrialConfig, device: str) -> None:
        data = load_train(bench, verified_dir=workdir / "verified")
        train_rows, val_rows = split_people(data, val_fraction=0.2, seed=0).indices(data)
        images = image_cache(data.paths, config.height, config.width, config.crop, workdir / "cache",
                             key=data.image_fingerprint)
        self.train = ImageSet(images, train_rows, data.training_labels(config.age_cutoff)[train_rows])
        self.val = ImageSet(images, val_rows, data.labels[val_rows])
        self.config, self.device = config, device

    def run(self) -> tuple[float, float]:
        start = time.perf_counter()
        result = fit(self.config, self.train, self.val, reporter=None, device=self.device)
        seconds = time.perf_counter() - start
        if result.status != "complete":
            raise RuntimeError(f"the bare fit ended {result.status}: {result.reason}")
        return seconds, result.best_macro_f1


def harness_run(opts: RunOptions) -> tuple[float, float, float]:
    """(run_study seconds, trial seconds, value) of one fresh one-trial study."""
    start = time.perf_counter()
    study = run_study(opts)
    seconds = time.perf_counter() - start
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(trials) != 1:
        states = [t.state.name for t in study.get_trials(deepcopy=False)]
        raise RuntimeError(f"study {study.study_name} should hold one complete trial but holds {states}")
    t = trials[0]
    return seconds, (t.datetime_complete - t.datetime_start).total_seconds(), float(t.value)


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=300, size=(96, 128))
    p.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm name (random init)")
    p.add_argument("--height", type=common.positive_int, default=64)
    p.add_argument("--width", type=common.positive_int, default=48)
    p.add_argument("--epochs", type=common.positive_int, default=3)
    p.add_argument("--batch-size", type=common.positive_int, default=32)
    p.add_argument("--repeats", type=common.positive_int, default=4, help="timed runs of each side")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary storage, artifacts and cache")
    common.add_work_root_arg(p)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    logging.getLogger("search").setLevel(logging.WARNING)  # one line per epoch would bury the table
    device = resolve_device(args.device)
    machine = common.machine(device)
    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)
    config = trial_config(args)
    args.work_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="harness-", dir=args.work_root))
    try:
        toml = study_file(workdir / "overhead.toml", config)
        bare = Bare(bench, workdir, config, str(device))

        def opts(name: str) -> RunOptions:
            return RunOptions(study=str(toml), name=name, data=bench, workdir=workdir,
                              storage=f"sqlite:///{workdir / 'studies.db'}", device=str(device))

        log.info("warm-up: one bare fit and one harness trial (imports, first model build, cache pages)")
        bare.run()
        harness_run(opts("warmup"))
        bare_s, total_s, trial_s, values = [], [], [], set()
        for i in range(args.repeats):
            order = ("bare", "harness") if i % 2 == 0 else ("harness", "bare")
            for side in order:
                if side == "bare":
                    seconds, f1 = bare.run()
                    bare_s.append(seconds)
                else:
                    seconds, trial, f1 = harness_run(opts(f"repeat{i}"))
                    total_s.append(seconds)
                    trial_s.append(trial)
                values.add(round(f1, 6))
                log.info("repeat %d %s: %.2f s (macro-F1 %.4f)", i + 1, side, seconds, f1)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    b, t, tr = common.median(bare_s), common.median(total_s), common.median(trial_s)
    # external load only ever adds time, so the fastest run of each side is the least disturbed one
    b_min, t_min, tr_min = min(bare_s), min(total_s), min(trial_s)
    figures = {
        "bare_fit_seconds": bare_s, "harness_run_study_seconds": total_s, "harness_trial_seconds": trial_s,
        "median_bare_seconds": b, "median_harness_seconds": t, "median_harness_trial_seconds": tr,
        "overhead_run_study": t / b - 1.0, "overhead_trial": tr / b - 1.0,
        "min_bare_seconds": b_min, "min_harness_seconds": t_min, "min_harness_trial_seconds": tr_min,
        "overhead_run_study_min": t_min / b_min - 1.0, "overhead_trial_min": tr_min / b_min - 1.0,
        "study_setup_seconds_median": common.median([x - y for x, y in zip(total_s, trial_s, strict=True)]),
        "same_macro_f1_every_run": len(values) == 1, "macro_f1_values": sorted(values),
    }
    print(f"\nHarness overhead: one trial of {config.backbone} at {config.height}x{config.width}, {config.epochs} "
          f"epochs, batch {config.batch_size}, on {bench} ({len(bare.train)} train / {len(bare.val)} validation "
          f"images); median of {args.repeats} alternating repeats, device {device}")
    print(common.describe_machine(machine) + "\n")
    print(common.table(["measure", "median s", "vs bare (median)", "min s", "vs bare (min)", "runs (s)"], [
        ["bare: runners.fit", b, "-", b_min, "-", ", ".join(f"{x:.2f}" for x in bare_s)],
        ["harness: trial (Optuna start->complete)", tr, f"{100 * (tr / b - 1):+.1f} %", tr_min,
         f"{100 * (tr_min / b_min - 1):+.1f} %", ", ".join(f"{x:.2f}" for x in trial_s)],
        ["harness: whole run_study (set-up included)", t, f"{100 * (t / b - 1):+.1f} %", t_min,
         f"{100 * (t_min / b_min - 1):+.1f} %", ", ".join(f"{x:.2f}" for x in total_s)],
    ]))
    print(f"\nsame macro-F1 on every run: {'yes' if len(values) == 1 else 'no'} ({sorted(values)})")
    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "verbose"}
    inputs.update(bench=str(bench), config=config.to_dict(), train_images=len(bare.train),
                  val_images=len(bare.val))
    notes = [
        "bare = runners.fit called directly (the training loop the harness calls), reporter=None",
        ("harness = search.engine.runstudy.run_study on a fresh one-trial study (sqlite storage in a temporary workdir), "
         "same cache file; set-up = load_train (layout check and image decode check), split, study attributes"),
    ]
    path = common.save_result(NAME, inputs=inputs, figures=figures, machine_info=machine, notes=notes,
                              results_dir=args.results_dir)
    print(f"saved {path}")
    return figures


if __name__ == "__main__":
    main()
