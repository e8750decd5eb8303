"""How well a model can find the old band at all: its ranking of old people, and the best any threshold does.

Old-band F1 at the argmax (``benchmarks.realfaces``) mixes two things: how well the model ranks
60-year-olds above everyone else by its P(old band) (the six old classes summed), and where the
line falls. A decision rule (search.ensembling.decision) can only move the line. This script takes
exported bundles, or a plain run's cached probabilities (``benchmarks.realfaces``), with the
real-face bench each was made on, predicts the bench's eval images, and reports per model:

- macro-F1 and the old band's F1, recall and precision at the argmax, with the old-band F1's
  standard deviation over bootstrap draws of whole eval people (its noise on this bench);
- the ranking: the AUC of P(old) for the old people against people aged 30-44, 45-54 and 55-59
  (0.5: no better than a coin), and mean P(old) by age;
- the ceiling: the best old-band F1 any old-band offset reaches (offset 0 is the argmax), the
  offset chosen on these same eval labels (in-sample: no offset fitted elsewhere does better);
- a label-free line: the old-band offset that predicts the old band for the share of images the
  training people's old share says (no old label is used to place it): macro-F1 and old-band F1.

    python -m benchmarks.old_band --sources W/bundle runs/benchmarks/realfaces/plain-KEY.json \
        --benches BENCH BENCH
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, precision_score, roc_auc_score

from benchmarks import common
from benchmarks.realfaces import score
from runners import resolve_device
from runners.classes import CANONICAL_CUTOFF as OLD_AGE
from search.benches.realfaces.build import eval_person_of_image
from search.data import load_eval
from search.deploy.bundle import Bundle
from search.ensembling.decision import OLD_CLASSES

log = logging.getLogger("benchmarks.old_band")
NAME = "old_band"
RIVALS = {"30-44": (30, 45), "45-54": (45, 55), "55-59": (55, OLD_AGE)}  # ages the old are ranked against
AGE_BINS = (18, 30, 45, 55, OLD_AGE, 200)


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    p.add_argument("--sources", type=Path, nargs="+", required=True,
                   help="a bundle folder (search.export) or a plain run's cached plain-<key>.json, per model")
    p.add_argument("--benches", type=Path, nargs="+", required=True,
                   help="the real-face bench (folder with bench.json) each source was made on, same order")
    p.add_argument("--names", nargs="+", help="a label per source for the table (default: the path)")
    p.add_argument("--device", default="auto")
    return p


def eval_probabilities(source: Path, bench: Path, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(ImageIDs, probabilities (N, 18)) of the bench's eval images: predicted by a bundle, or read
    from a plain run's cache (its .npy beside the .json, in the json's image_ids order)."""
    if source.is_dir():
        ev = load_eval(bench / "data", check_images=False)
        log.info("predicting %d eval images with %s", len(ev.paths), source)
        probs = Bundle.load(source).predict_proba(ev.paths, device=device, progress=False)
        return ev.info["ImageID"].to_numpy(dtype=str), np.asarray(probs, dtype=np.float64)
    meta, npy = source, source.with_suffix(".npy")
    if source.suffix != ".json" or not npy.is_file():
        raise SystemExit(f"{source} is neither a bundle folder nor a plain run's cached .json "
                         "with its .npy beside it.")
    return np.asarray(json.loads(meta.read_text())["image_ids"], dtype=str), np.load(npy).astype(np.float64)


def old_probability(probs: np.ndarray) -> np.ndarray:
    return probs @ OLD_CLASSES


def old_margin(probs: np.ndarray) -> np.ndarray:
    """The best old class's log-probability minus the best other class's: the argmax falls in the
    old band where ``margin + offset > 0`` for an old-band offset (search.ensembling.decision)."""
    logp = np.log(np.clip(probs, 1e-7, None))
    old = OLD_CLASSES.astype(bool)
    return logp[:, old].max(1) - logp[:, ~old].max(1)


def rate_offset(probs: np.ndarray, rate: float) -> float:
    """The old-band offset under which the argmax falls in the old band for a ``rate`` share of the rows."""
    return float(-np.quantile(old_margin(probs), 1.0 - rate)) + 1e-9  # rows at the quantile itself included


def ceiling(is_old: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The best old-band F1 any old-band offset reaches on these rows (offset 0: the argmax), the offset
    chosen on the same rows, and the share of rows it puts in the old band."""
    margin = old_margin(probs)
    best = (0.0, 0.0, 0.0)
    for offset in np.unique(np.append(-np.quantile(margin, np.linspace(0.005, 1.0, 200)), 0.0)):
        pred = margin + offset > 0
        best = max(best, (float(f1_score(is_old, pred, zero_division=0)), float(pred.mean()), float(offset)),
                   key=lambda b: b[0])
    return {"old_f1": best[0], "predicted_share": best[1], "offset": best[2]}


def measure(source: Path, bench: Path, device: str) -> dict[str, Any]:
    labels_path = bench / "eval_labels.csv"
    if not (bench / "bench.json").is_file() or not labels_path.is_file() or \
            "age" not in pd.read_csv(labels_path, nrows=0).columns:
        raise SystemExit(f"{bench} is not a real-face bench (bench.json, and eval_labels.csv with an age "
                         "column): pass the folder python -m search.realfaces built.")
    ids, probs = eval_probabilities(source, bench, device)
    labels = pd.read_csv(labels_path, dtype={"ImageID": str}).set_index("ImageID")
    unknown = [i for i in ids if i not in labels.index]
    if unknown:
        raise SystemExit(f"{source} predicted ImageID {unknown[0]!r}, which {bench}/eval_labels.csv does not "
                         "have: pass the bench it was made on, in the same order as --sources.")
    labels = labels.loc[ids]
    age, is_old = labels["age"].to_numpy(), labels["age"].to_numpy() >= OLD_AGE
    p_old = old_probability(probs)
    argmax = score(labels, probs.argmax(1))
    pred_old = np.isin(probs.argmax(1), np.flatnonzero(OLD_CLASSES))
    person_of = eval_person_of_image(bench)
    people = np.asarray([person_of[i] for i in ids])
    auc = {}
    for name, (lo, hi) in RIVALS.items():  # None where the bench has nobody of those ages (or nobody old)
        rival = (age >= lo) & (age < hi)
        auc[name] = float(roc_auc_score(is_old[is_old | rival], p_old[is_old | rival])) \
            if is_old.any() and rival.any() else None
    by_age = pd.Series(p_old).groupby(pd.cut(age, AGE_BINS, right=False), observed=True).mean()
    train = pd.read_csv(bench / "data" / "train" / "train.csv")
    share = float((train["age"] >= OLD_AGE).mean())
    offset = rate_offset(probs, share)
    lined = score(labels, (np.log(np.clip(probs, 1e-7, None)) + offset * OLD_CLASSES).argmax(1))
    return {
        "source": str(source), "bench": str(bench), "eval_images": int(len(ids)),
        "eval_old_people": int(len(np.unique(people[is_old]))),
        "argmax": {**{k: argmax[k] for k in ("macro_f1", "old_f1", "old_recall")},
                   "old_precision": float(precision_score(is_old, pred_old, zero_division=0)),
                   "predicted_old_share": float(pred_old.mean())},
        "old_f1_sd_people": common.people_sd(
            lambda rows: f1_score(is_old[rows], pred_old[rows], zero_division=0), people),
        "auc_old_against": auc,
        "mean_p_old_by_age": {str(k): float(v) for k, v in by_age.items()},
        "ceiling": ceiling(is_old, probs),
        "training_share_line": {"share": share, "offset": offset, "macro_f1": lined["macro_f1"],
                                "old_f1": lined["old_f1"]},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    names = common.paired_names("--sources", args.sources, "source", "--benches", args.benches, "bench",
                                args.names)
    common.setup(args)
    device = str(resolve_device(args.device))
    start = time.perf_counter()
    models = [{"name": n, **measure(s, b, device)}
              for n, s, b in zip(names, args.sources, args.benches, strict=True)]
    rows = [[m["name"], m["argmax"]["macro_f1"],
             f"{m['argmax']['old_f1']:.3f} ± {m['old_f1_sd_people']:.3f}",
             m["argmax"]["old_recall"], m["argmax"]["old_precision"], *m["auc_old_against"].values(),
             m["ceiling"]["old_f1"], m["training_share_line"]["macro_f1"], m["training_share_line"]["old_f1"]]
            for m in models]
    print(common.table(["model", "macro-F1", "old F1 ± SD (people)", "old recall", "old precision",
                        *(f"AUC old vs {k}" for k in RIVALS), "old F1 ceiling (any offset)",
                        "training-share line: macro-F1", "old F1"], rows))
    figures = {"models": models, "seconds": time.perf_counter() - start,
               "max_ceiling": max(m["ceiling"]["old_f1"] for m in models)}
    inputs = {"sources": [str(s) for s in args.sources], "benches": [str(b) for b in args.benches],
              "names": names, "device": device}
    notes = ["no training; the ceiling's offset is chosen on the eval labels it is scored on"]
    common.save_result(NAME, inputs=inputs, figures=figures, machine_info=common.machine(device),
                       results_dir=args.results_dir, notes=notes)
    return figures


if __name__ == "__main__":
    main()
