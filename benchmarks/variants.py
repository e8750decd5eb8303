"""One trial's settings with one thing changed, each trained once per real-face bench seed.

The age cutoff (58/59/60), the input (crop and size) or any other ``TrialConfig`` value: each
variant is the same fixed trial (the ``age_cutoff`` CPU profile's fixed values with ``--base``
values for the sampled ones) with its overrides, run as a one-trial study through the real
verbs (``search.run --n-trials 1``, ``search.export --weights 0=1 --decision-rule off``,
``search.predict``), and scored on the bench's eval labels: macro-F1, F1 per task, and the old
band's recall, precision and F1. The first variant is the baseline the others are read against.

    python -m benchmarks.variants --faces UTKFace --exclude exclude.txt --seeds 0 1 --threads 1 \\
        --variants cutoff58:age_cutoff=58 cutoff59:age_cutoff=59 cutoff60:age_cutoff=60

One override is the benchmark's, not the trial's: ``train_people=N`` trains on N of the bench's
train people (drawn per gender x age band, so the bands keep their shares; ``subset_data``) and
scores on the same eval people, to see what more people to learn from would buy:

    python -m benchmarks.variants ... --people 1500 --variants p500:train_people=500 p1500:

A variant whose scores are saved in its work folder is read back, not trained again, so an
interrupted run resumes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import precision_score

from benchmarks import common
from benchmarks.realfaces import _run, ensure_bench, read_labels, score
from runners.classes import OLD_BAND, YOUNG_CUTOFF, decompose
from runners.classes import CANONICAL_CUTOFF as OLD_AGE
from search.benches.synth.people import allocate
from search.common.atomic import temp_dir
from search.storage.trial_attrs import TrialAttrs
from search.studyfile.parse import load_study_spec

log = logging.getLogger("benchmarks.variants")
NAME = "variants"
WORK = common.RUNS_DIR / NAME
# The sampled values of the CPU profile, fixed for every variant (inside its ranges).
BASE = {"backbone": "tf_efficientnet_lite0", "lr": 3e-3, "focal_gamma": 1.0, "unfrozen_depth": -1, "age_cutoff": 60}
DEFAULT_VARIANTS = ["cutoff60:age_cutoff=60", "cutoff59:age_cutoff=59", "cutoff58:age_cutoff=58"]


def parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value,key=value`` -> (name, overrides)."""
    name, _, rest = text.partition(":")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise SystemExit(f"--variants {text!r}: start with a name of letters, digits, - or _, then ':'")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--variants {text!r}: {item!r} is not key=value")
        overrides[key.strip()] = parse_value(value.strip())
    return name, overrides


def study_doc(overrides: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-trial study: the age_cutoff CPU profile's fixed values, BASE and ``base``, then the overrides."""
    spec = load_study_spec("age_cutoff", profile="cpu")
    fixed = {**spec.fixed, **BASE, **(base or {}), **overrides}
    cutoff = fixed.pop("age_cutoff")
    return {"study": {"description": "benchmarks.variants: one fixed trial", "n_trials": 1, "keep_top": 1},
            "sampler": {"name": "random", "seed": 0},
            "pruner": {"name": "none"},
            "split": {"val_fraction": spec.split.val_fraction, "seed": spec.split.seed},
            "fixed": fixed,
            "params": {"age_cutoff": [cutoff]}}


def subset_data(bench: Path, people: int, seed: int = 0) -> Path:
    """A data folder of ``people`` of the bench's train people, drawn per gender x age band, and all its
    eval people: train.csv's rows and links to their folders, the eval folder linked whole. Made once
    under the bench (``data-trainN``) and reused."""
    out = bench / f"data-train{people}"
    if (out / "train" / "train.csv").is_file():
        return out
    if out.exists() or out.is_symlink():  # not a subset this function finished: never replace it
        raise SystemExit(f"{out} exists but has no train/train.csv; it is not a subset this benchmark made. "
                         "Move it away, or pass another train_people.")
    train = pd.read_csv(bench / "data" / "train" / "train.csv", dtype={"id": str})
    if not 6 <= people < len(train):
        raise SystemExit(f"train_people={people}: the bench {bench} has {len(train)} train people; ask for "
                         "6 or more and fewer than that.")
    cell = train["gender"] + np.digitize(train["age"], [YOUNG_CUTOFF, OLD_AGE]).astype(str)
    sizes = cell.value_counts().sort_index()
    take = dict(zip(sizes.index, allocate(people, sizes.to_numpy(dtype=float), minimum=1), strict=True))
    rng = np.random.default_rng(seed)
    keep = pd.concat([rows.iloc[rng.permutation(len(rows))[:take[c]]] for c, rows in train.groupby(cell)])
    with temp_dir(out) as tmp:
        (tmp / "train" / "images").mkdir(parents=True)
        for folder in keep["path"]:
            (tmp / "train" / "images" / folder).symlink_to(bench / "data" / "train" / "images" / folder)
        (tmp / "eval").symlink_to(bench / "data" / "eval")
        keep.sort_index().to_csv(tmp / "train" / "train.csv", index=False)
        os.replace(tmp, out)  # out is missing (checked above): a plain rename
    return out


def old_precision(labels: np.ndarray, preds: np.ndarray) -> float:
    return float(precision_score(decompose(labels)[2] == OLD_BAND, decompose(preds)[2] == OLD_BAND, zero_division=0))


def run_variant(args: Any, bench: Path, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    workdir = WORK / f"{bench.name}-{name}-{args.tag}"
    saved = workdir / "scores.json"
    if saved.is_file():
        log.info("%s: read back from %s", name, saved)
        return {**json.loads(saved.read_text()), "reused": True}
    trial_overrides = {k: v for k, v in overrides.items() if k != "train_people"}
    data = str(subset_data(bench.resolve(), overrides["train_people"]) if "train_people" in overrides else bench / "data")
    workdir.mkdir(parents=True, exist_ok=True)
    study_file = common.write_toml(workdir / f"{name}.toml", study_doc(trial_overrides, args.base_overrides))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or os.cpu_count())}
    py, logs = sys.executable, workdir / "commands.log"
    stored = ["--name", name, "--workdir", str(workdir)]
    threads = ["--threads", str(args.threads)] if args.threads else []
    start = time.perf_counter()
    seconds = {
        "run": _run([py, "-m", "search.run", "--data", data, "--study", str(study_file), "--n-trials", "1",
                     "--workdir", str(workdir), *threads], logs, env),
        "export": _run([py, "-m", "search.export", *stored, "--weights", "0=1", "--decision-rule", "off",
                        "--out", str(workdir / "bundle")], logs, env),
        "predict": _run([py, "-m", "search.predict", "--bundle", str(workdir / "bundle"), "--data", data,
                         "--out", str(workdir / "submission.csv")], logs, env),
    }
    trial = optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'studies.db'}").trials[0]
    labels = read_labels(bench)
    sub = pd.read_csv(workdir / "submission.csv", dtype={"ImageID": str})
    y = labels.loc[sub["ImageID"], "label"].to_numpy(dtype=np.int64)
    preds = sub["ans"].to_numpy(dtype=np.int64)
    result = {"variant": name, "overrides": overrides, "state": trial.state.name,
              "val_macro_f1": trial.value, "best_epoch": TrialAttrs.read(trial).best_epoch,
              "seconds_per_epoch": TrialAttrs.read(trial).seconds_per_epoch,
              "scores": {**score(labels.loc[sub["ImageID"]], preds), "old_precision": old_precision(y, preds)},
              "seconds": seconds, "seconds_total": time.perf_counter() - start, "workdir": str(workdir)}
    saved.write_text(json.dumps(result, indent=1, default=str))
    return {**result, "reused": False}


def mean_deltas(runs: list[dict[str, Any]], base: str, names: list[str]) -> dict[str, dict[str, float]]:
    """Each variant minus the baseline on the same seed, averaged over seeds: macro-F1 and old-band F1."""
    by = {(r["variant"], r["seed"]): r["scores"] for r in runs}
    return {name: {k: float(np.mean([by[name, s][k] - by[base, s][k] for (v, s) in by if v == name]))
                   for k in ("macro_f1", "old_f1")} for name in names}


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    p.add_argument("--faces", type=Path, required=True, help="folder of UTKFace-named photos")
    p.add_argument("--exclude", type=Path, help="photos never to use (one name per line)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="bench seeds")
    p.add_argument("--people", type=int, default=500)
    p.add_argument("--eval-people", type=int, default=250)
    p.add_argument("--size", type=common.size_arg, default=(384, 512), help="photo WIDTHxHEIGHT")
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                   help="NAME:key=value,... (TrialConfig names); the first is the baseline")
    p.add_argument("--base", default="", help="key=value,... replacing the base trial's values for every variant")
    p.add_argument("--tag", default="default", help="names the work folders, to keep runs apart")
    p.add_argument("--name", default=NAME, help="result file name (benchmarks/results/NAME.json)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    variants = [parse_variant(v) for v in args.variants]
    args.base_overrides = parse_variant(f"base:{args.base}")[1]
    runs = []
    for seed in args.seeds:
        bench = ensure_bench(args, seed)
        for name, overrides in variants:
            runs.append({"seed": seed, **run_variant(args, bench, name, overrides)})
    keys = ("macro_f1", "mask_f1", "gender_f1", "age_f1", "old_recall", "old_precision", "old_f1")
    rows = [[r["seed"], r["variant"], *(f"{r['scores'][k]:.4f}" for k in keys),
             f"{r['val_macro_f1']:.4f}" if r["val_macro_f1"] is not None else "-",
             f"{r['seconds']['run']:.0f}"] for r in runs]
    print(common.table(["seed", "variant", *keys, "val macro-F1", "run s"], rows))
    base = variants[0][0]
    deltas = mean_deltas(runs, base, [name for name, _ in variants[1:]])
    for name, d in deltas.items():
        print(f"{name} - {base}, mean over seeds: macro-F1 {d['macro_f1']:+.4f}, old-band F1 {d['old_f1']:+.4f}")
    figures = {"runs": runs, "base": {**BASE, **args.base_overrides}, "baseline_variant": base, "mean_deltas": deltas}
    path = common.save_result(args.name, inputs={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                                      if k != "base_overrides"},
                              figures=figures, machine_info=common.machine(), results_dir=args.results_dir,
                              notes=["one trial per variant and seed, scored on the bench's eval labels",
                                     "threads: OMP_NUM_THREADS and search.run --threads (--threads)"])
    print(f"saved {path}")
    return figures


if __name__ == "__main__":
    main()
