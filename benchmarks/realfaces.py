"""The harness against the plain way, side by side, on benches of real faces.

For each bench seed: build the bench from a UTKFace folder (``search.realfaces``; reused when
present), run the plain pretrained baseline (``benchmarks.plain_run``), then the harness's
default command for at most ``--budget-factor`` times the plain run's wall time, as a user
runs it: ``search.run`` (``--timeout``), ``search.ensemble``, ``search.export`` and
``search.predict``, each a subprocess. Both sides are scored on the bench's eval labels, which
neither has seen. The harness's honest estimate (``search.ensemble``'s held-out score of the
exported method) is printed beside its eval score.

    python -m benchmarks.realfaces --faces /path/to/UTKFace --exclude exclude.txt --seeds 0 1 --threads 1

Plain runs are cached under runs/benchmarks/realfaces (their probabilities and wall time), so
a second call with the same bench and settings measures the harness side only; the JSON says so.
The harness's budget is a multiple of that cached time, so a machine faster or less loaded than on the
day it was cached gives the harness more work per second of budget: ``--fresh-plain`` times the plain
run again (``--plain-only``: and nothing else) and keeps the earlier time beside the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState
from sklearn.metrics import f1_score, recall_score

from benchmarks import common
from benchmarks.plain_run import PlainSettings, plain_run
from runners.classes import NUM_AGE_BANDS, NUM_CLASSES, NUM_GENDERS, NUM_MASKS, OLD_BAND, decompose
from search.benches.realfaces import build
from search.benches.realfaces.build import eval_person_of_image
from search.common.atomic import write_text, write_with

log = logging.getLogger("benchmarks.realfaces")
NAME = "realfaces"
WORK = common.RUNS_DIR / NAME


# scoring -------------------------------------------------------------------------------------
def score(labels: pd.DataFrame, preds: np.ndarray) -> dict[str, float]:
    """Macro-F1 and accuracy over all classes, F1 per task, and the old band's recall and F1."""
    y = labels["label"].to_numpy(dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    parts_y, parts_p = decompose(y), decompose(p)  # (mask, gender, age band) of each row
    task = {name: (parts_y[k], parts_p[k], list(range(n)))
            for k, (name, n) in enumerate((("mask", NUM_MASKS), ("gender", NUM_GENDERS), ("age", NUM_AGE_BANDS)))}
    out = {"macro_f1": float(f1_score(y, p, labels=list(range(NUM_CLASSES)), average="macro", zero_division=0)),
           "accuracy": float(np.mean(y == p))}
    for name, (yt, pt, classes) in task.items():
        out[f"{name}_f1"] = float(f1_score(yt, pt, labels=classes, average="macro", zero_division=0))
    old_true, old_pred = (parts_y[2] == OLD_BAND).astype(int), (parts_p[2] == OLD_BAND).astype(int)
    out["old_recall"] = float(recall_score(old_true, old_pred, zero_division=0))
    out["old_f1"] = float(f1_score(old_true, old_pred, zero_division=0))
    return out


def people_sds(bench: Path, labels: pd.DataFrame, plain: dict[str, int],
               sub: pd.DataFrame) -> tuple[float, float, float]:
    """SD over bootstrap draws of eval people of the plain run's macro-F1, the harness's, and their
    difference: how much of a seed's figure is which 250 people the bench drew."""
    ids = sub["ImageID"].tolist()
    person_of = eval_person_of_image(bench)
    people = np.asarray([person_of[i] for i in ids])
    y = labels.loc[ids, "label"].to_numpy(dtype=np.int64)
    ours, theirs = sub["ans"].to_numpy(dtype=np.int64), np.asarray([plain[i] for i in ids])

    def macro(pred: np.ndarray, rows: np.ndarray) -> float:
        return float(f1_score(y[rows], pred[rows], labels=list(range(NUM_CLASSES)), average="macro", zero_division=0))

    return (common.people_sd(lambda rows: macro(theirs, rows), people),
            common.people_sd(lambda rows: macro(ours, rows), people),
            common.people_sd(lambda rows: macro(ours, rows) - macro(theirs, rows), people))


def read_labels(bench: Path) -> pd.DataFrame:
    return pd.read_csv(bench / "eval_labels.csv", dtype={"ImageID": str}).set_index("ImageID")


# the two sides -------------------------------------------------------------------------------
def ensure_bench(args: Any, seed: int) -> Path:
    out = common.DATA_DIR / f"realfaces_p{args.people}_e{args.eval_people}_{args.size[0]}x{args.size[1]}_s{seed}"
    if not (out / "bench.json").is_file():
        build(args.faces, out, n_train=args.people, n_eval=args.eval_people, seed=seed, size=args.size,
              exclude=args.exclude)
    return out


def cached_plain(bench: Path, settings: PlainSettings, threads: int, fresh: bool = False) -> dict[str, Any]:
    """The plain run on this bench, read back when an earlier run cached it, unless ``fresh``: then run
    again (its wall time measured on today's machine), the cache replaced, and the cached time kept
    as ``cached_seconds``."""
    key = hashlib.sha256(json.dumps([str(bench.resolve()), asdict(settings), threads]).encode()).hexdigest()[:12]
    meta, npy = WORK / f"plain-{key}.json", WORK / f"plain-{key}.npy"
    cached = json.loads(meta.read_text()) if meta.is_file() and npy.is_file() else None
    if cached is not None and not fresh:
        cached["probs"], cached["reused"] = np.load(npy), True
        return cached
    result = plain_run(bench / "data", settings)
    WORK.mkdir(parents=True, exist_ok=True)
    write_with(npy, lambda f: np.save(f, result["probs"]))
    write_text(meta, json.dumps({k: v for k, v in result.items() if k != "probs"}, indent=1))
    result["reused"] = False
    if cached is not None:
        result["cached_seconds"] = cached["seconds"]
    return result


def _run(cmd: list[str], log_file: Path, env: dict[str, str]) -> float:
    log.info("$ %s", shlex.join(cmd))
    start = time.perf_counter()
    with open(log_file, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {done.returncode}; see {log_file}")
    return time.perf_counter() - start


def harness(args: Any, bench: Path, timeout_s: float, seed: int) -> dict[str, Any]:
    """The main command, then ensemble, export and predict, as subprocesses; wall times per step."""
    name = Path(args.study).stem  # the stored study's name: the study file's name
    workdir = WORK / f"{bench.name}-{name}-{args.tag}"
    if workdir.exists():
        raise SystemExit(f"{workdir} exists from an earlier run; remove it or pass another --tag")
    workdir.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads or os.cpu_count())}
    py, data, logs = sys.executable, str(bench / "data"), workdir / "commands.log"
    stored = ["--name", name, "--workdir", str(workdir)]
    seconds = {
        "run": _run([py, "-m", "search.run", "--data", data, "--timeout", f"{timeout_s:.0f}", "--study", args.study,
                     "--workdir", str(workdir)], logs, env),
        "ensemble": _run([py, "-m", "search.ensemble", *stored], logs, env),
        "export": _run([py, "-m", "search.export", *stored, "--out", str(workdir / "bundle")], logs, env),
        "predict": _run([py, "-m", "search.predict", "--bundle", str(workdir / "bundle"), "--data", data,
                         "--out", str(workdir / "submission.csv")], logs, env),
    }
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{workdir / 'studies.db'}")
    counts = {s.name.lower(): sum(t.state == s for t in study.trials)
              for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    manifest = json.loads((workdir / "bundle" / "manifest.json").read_text())
    honest = {s["method"]: s["macro_f1"] for s in manifest["metrics"]["honest"]["scores"]}
    submission = pd.read_csv(workdir / "submission.csv", dtype={"ImageID": str})
    return {"workdir": str(workdir), "seconds": seconds, "trials": counts, "honest": honest,
            "members": len(manifest["members"]), "decision_rule": manifest.get("decision_rule"),
            "shipped": manifest["metrics"].get("shipped"), "submission": submission}


def one_seed(args: Any, seed: int) -> dict[str, Any]:
    bench = ensure_bench(args, seed)
    labels = read_labels(bench)
    plain = cached_plain(bench, PlainSettings(epochs=args.plain_epochs), args.threads, fresh=args.fresh_plain)
    plain_preds = np.argmax(plain["probs"], axis=1)
    plain_scores = score(labels.loc[plain["image_ids"]], plain_preds)
    plain_side = {"scores": plain_scores, "seconds": plain["seconds"], "best_val_macro_f1": plain["best_val_macro_f1"],
                  "history": plain["history"], "reused": plain["reused"],
                  **({"cached_seconds": plain["cached_seconds"]} if "cached_seconds" in plain else {})}
    if args.plain_only:
        return {"bench": str(bench), "seed": seed, "plain": plain_side}
    budget = args.budget_factor * plain["seconds"]
    # The study stops starting trials at its timeout; the trial then running, ensemble, export and
    # predict come after, so the study gets the budget less a margin for them.
    side = harness(args, bench, budget * args.study_share, seed)
    sub = side.pop("submission")
    ours = score(labels.loc[sub["ImageID"]], sub["ans"].to_numpy())
    plain_scores["macro_f1_sd_people"], ours["macro_f1_sd_people"], ours["minus_plain_sd_people"] = people_sds(
        bench, labels, dict(zip(plain["image_ids"], plain_preds, strict=True)), sub)
    shipped = side["shipped"]  # the row export chose, with its estimate (out-of-fold for the fold groups' vote)
    exported = shipped["method"] if shipped else "selected + decision rule" if side["decision_rule"] else "selected ensemble"
    estimate = shipped["estimate"]["macro_f1"] if shipped else side["honest"][exported]
    return {"bench": str(bench), "seed": seed, "plain": plain_side,
            "harness": {"scores": ours, "honest_estimate": estimate, "exported_method": exported,
                        "seconds_total": sum(side["seconds"].values()), "budget_seconds": budget, **side}}


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    p.add_argument("--faces", type=Path, help="folder of UTKFace-named photos (needed unless --combine)")
    p.add_argument("--exclude", type=Path, help="photos never to use (one name per line)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="bench seeds")
    p.add_argument("--people", type=int, default=700)
    p.add_argument("--eval-people", type=int, default=300)
    p.add_argument("--size", type=common.size_arg, default=(384, 512), help="photo WIDTHxHEIGHT")
    p.add_argument("--plain-epochs", type=int, default=5)
    p.add_argument("--budget-factor", type=float, default=3.0, help="the harness's budget / the plain run's wall time")
    p.add_argument("--study-share", type=float, default=0.9,
                   help="share of the budget given to search.run --timeout (the rest: last trial, ensemble, export, predict)")
    p.add_argument("--study", default="age_cutoff", help="study file the harness runs (a name in studies/ or a .toml path)")
    p.add_argument("--tag", default="default", help="names the harness's work folder, to keep runs apart")
    p.add_argument("--name", default=NAME, help="result file name (benchmarks/results/NAME.json)")
    p.add_argument("--fresh-plain", action="store_true",
                   help="run the plain side again even when cached (its wall time on today's machine), replacing the cache")
    p.add_argument("--plain-only", action="store_true", help="the plain side only (with --fresh-plain: time it again)")
    p.add_argument("--combine", type=Path, nargs="+", help="instead of running: combine these result files")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    if args.combine:  # seeds run as separate processes (in parallel): one table and mean over their results
        runs = [run for path in args.combine for run in json.loads(path.read_text())["figures"]["runs"]]
    else:
        if args.faces is None:
            raise SystemExit("--faces is required to run the benchmark (point it at a UTKFace folder)")
        runs = [one_seed(args, seed) for seed in args.seeds]
    rows, keys = [], ("macro_f1", "accuracy", "mask_f1", "gender_f1", "age_f1", "old_recall", "old_f1")
    for r in runs:
        for side in ("plain", "harness") if "harness" in r else ("plain",):
            s = r[side]
            rows.append([r["seed"], side, *(f"{s['scores'][k]:.4f}" for k in keys),
                         f"{s['honest_estimate']:.4f}" if side == "harness" else "-",
                         f"{s.get('seconds_total', s['seconds']):.0f}",
                         "-" if side == "plain" else "{complete}/{pruned}/{fail}".format(**s["trials"])])
    print(common.table(["seed", "side", *keys, "honest est.", "wall s", "complete/pruned/failed"], rows))
    for r in runs:
        if "cached_seconds" in r["plain"]:
            print(f"seed {r['seed']}: plain run {r['plain']['seconds']:.0f} s now, {r['plain']['cached_seconds']:.0f} s "
                  "when it was cached")
        if "minus_plain_sd_people" in r.get("harness", {}).get("scores", {}):  # results saved before had none
            ours, theirs = r["harness"]["scores"], r["plain"]["scores"]
            print(f"seed {r['seed']}: harness - plain macro-F1 {ours['macro_f1'] - theirs['macro_f1']:+.4f} "
                  f"± {ours['minus_plain_sd_people']:.4f}; SD over eval people: harness {ours['macro_f1_sd_people']:.4f}, "
                  f"plain {theirs['macro_f1_sd_people']:.4f}")
    figures: dict[str, Any] = {"runs": runs}
    if all("harness" in r for r in runs):
        mean = {side: {k: float(np.mean([r[side]["scores"][k] for r in runs])) for k in keys} for side in ("plain", "harness")}
        gap = float(np.mean([r["harness"]["honest_estimate"] - r["harness"]["scores"]["macro_f1"] for r in runs]))
        print(f"\nmean over seeds: harness - plain macro-F1 {mean['harness']['macro_f1'] - mean['plain']['macro_f1']:+.4f}; "
              f"harness old-band F1 {mean['harness']['old_f1']:.4f}; honest estimate - eval {gap:+.4f}")
        figures.update(mean=mean, harness_minus_plain_macro_f1=mean["harness"]["macro_f1"] - mean["plain"]["macro_f1"],
                       honest_minus_eval=gap)
    path = common.save_result(args.name, inputs={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                              figures=figures, machine_info=common.machine(), results_dir=args.results_dir,
                              notes=["scores on the bench's eval labels; honest est. = search.ensemble's held-out "
                                     "score of the exported method", "threads: OMP_NUM_THREADS for the harness, "
                                     "torch.set_num_threads for the plain run (--threads)"])
    print(f"saved {path}")
    return figures


if __name__ == "__main__":
    main()
