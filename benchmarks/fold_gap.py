"""Why a fold group's out-of-fold estimate sits below its eval score: its single models against its vote.

A fold group (``search.refit``) ships the soft vote of its K models, but its estimate is out of
fold: each person is predicted by the one model that never saw them, so the estimate is of a single
model on (K-1)/K of the people. This script takes finished fold groups and the bench each was
trained on, predicts the bench's eval images with every fold model, and splits the gap

    eval macro-F1 of the K-model vote - out-of-fold macro-F1
      = (mean eval macro-F1 of the single models - out-of-fold macro-F1)     "people"
      + (eval macro-F1 of the vote - mean eval macro-F1 of the single models)  "vote gain"

("people": the eval people against the train people, for the same single models)

with the votes of every pair of models in between (how the gain grows with members) and the
old band's F1 beside each. Two figures go with it that need no eval labels: the out-of-fold
score's standard deviation over bootstrap draws of people (the noise of a score over that many
people), and the vote's gain among the study's own K best trials on its validation people (a
candidate estimate of the fold vote's gain). Last, the decision rule for macro-F1 (tau and the
old-band offset, search.ensembling.decision) fitted on the out-of-fold predictions of every
person: its gain cross-fitted over two halves of the people, and on the eval vote. Nothing is
trained; each group is read from its folder (``<workdir>/trials/<study>/refit_<trial>/folds-<K>``).

    python -m benchmarks.fold_gap --groups W/trials/age_cutoff/refit_00002/folds-3 --data BENCH/data
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import common
from benchmarks.realfaces import score
from runners import resolve_device
from runners.metrics import macro_f1_people_sd
from search.data import image_cache, load_eval, load_train
from search.deploy.graph import build_checkpoint, build_ensemble, torch_predict
from search.ensembling.decision import apply_offsets, fit_rule
from search.ensembling.evalscore import find_eval_labels, read_eval_labels
from search.ensembling.procedure import vote_gain

log = logging.getLogger("benchmarks.fold_gap")
NAME = "fold_gap"


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    p.add_argument("--groups", type=Path, nargs="+", required=True,
                   help="fold-group folders (.../refit_<trial>/folds-<K>, each with oof.npz and fold_<i>/)")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="the data folder each group was trained on, in the same order "
                        "(its eval labels beside it)")
    p.add_argument("--names", nargs="+", help="a label per group for the table (default: the folder path)")
    p.add_argument("--cache", type=Path, default=common.RUNS_DIR / NAME / "cache",
                   help="decoded eval images (a run's <workdir>/cache reuses its own)")
    p.add_argument("--device", default="auto")
    return p


def _labels(classes: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"label": np.asarray(classes, dtype=np.int64)})


def _scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    s = score(_labels(labels), probs.argmax(1))
    return {k: s[k] for k in ("macro_f1", "old_f1", "old_recall")}


def read_group(folder: Path) -> tuple[list[Path], dict[str, Any], dict[str, np.ndarray]]:
    """The group's fold-model folders (fold order), its first model's config and its out-of-fold arrays."""
    k = json.loads((folder / "plan.json").read_text())["k"]
    models = [folder / f"fold_{i}" for i in range(k)]
    missing = [str(m) for m in models if not (m / "weights.safetensors").is_file()]
    if missing or not (folder / "oof.npz").is_file():
        raise SystemExit(f"{folder} is not a finished fold group (missing: {missing or ['oof.npz']}); "
                         "finish it with python -m search.refit first.")
    with np.load(folder / "oof.npz", allow_pickle=False) as z:
        if "labels" not in z.files:
            raise SystemExit(f"{folder / 'oof.npz'} has no labels (saved by an older version); "
                             "refit the group again.")
        oof = {key: z[key] for key in ("rows", "probs", "fold", "labels")}
    config = json.loads((models[0] / "config.json").read_text())
    return models, config, oof


def trial_vote_gain(trials_dir: Path, members: int) -> dict[str, Any] | None:
    """The vote's gain among the study's own trials on its validation people (whom no trial trained
    on): ``search.ensembling.procedure.vote_gain`` of the ``members`` best trials, at the epoch each
    ships (the last it ran where kept, else its best); None with fewer trials."""
    val = trials_dir / "validation.npz"
    if not val.is_file():
        return None
    with np.load(val, allow_pickle=False) as z:
        labels = z["labels"]
    probs = {}
    for t in sorted(trials_dir.glob("trial_*")):
        f = t / "last_val_probs.npy" if (t / "last_val_probs.npy").is_file() else t / "val_probs.npy"
        if f.is_file():
            probs[t.name] = np.load(f)
    if len(probs) < members:
        return None
    return vote_gain(probs, labels, members).to_dict()


def rule_on_out_of_fold(oof: dict[str, np.ndarray], people: np.ndarray, eval_labels: np.ndarray,
                        eval_vote: np.ndarray) -> dict[str, Any]:
    """The decision rule (search.ensembling.decision: tau and the old-band offset) fitted on the
    group's out-of-fold predictions: cross-fitted over two halves of the people (fitted on one,
    scored on the other, both ways: its honest gain), then fitted on every person and applied to the
    eval vote (its gain there)."""
    ids = np.unique(people)
    half = np.isin(people, np.random.default_rng(0).permutation(ids)[: len(ids) // 2])
    probs, labels = oof["probs"], oof["labels"]
    crossed = []
    for fit_rows, score_rows in ((half, ~half), (~half, half)):
        rule = fit_rule(probs[fit_rows], labels[fit_rows])
        with_rule = _scores(labels[score_rows], apply_offsets(probs[score_rows], rule.offsets))
        without = _scores(labels[score_rows], probs[score_rows])
        crossed.append({k: with_rule[k] - without[k] for k in with_rule})
    rule = fit_rule(probs, labels)
    return {"tau": rule.tau, "old_band_offset": rule.old_band_offset,
            "out_of_fold_gain": {k: float(np.mean([c[k] for c in crossed])) for k in crossed[0]},
            "eval_vote": _scores(eval_labels, apply_offsets(eval_vote, rule.offsets))}


def measure(folder: Path, data_root: Path, cache: Path, device: str) -> dict[str, Any]:
    models, config, oof = read_group(folder)
    train = load_train(data_root)
    planned = json.loads((folder / "plan.json").read_text())["fingerprint"]
    if train.fingerprint != planned:
        raise SystemExit(f"{data_root} is not the data {folder} was trained on (fingerprint "
                         f"{train.fingerprint[:12]}, its plan {planned[:12]}): pass its own bench's data "
                         "folder, in the same order as --groups.")
    labels_path = find_eval_labels(data_root)
    if labels_path is None:
        raise SystemExit(f"{data_root} has no eval labels beside it: pass the bench's data folder.")
    ev = load_eval(data_root, check_images=False)
    ev_labels = read_eval_labels(labels_path, ev.info["ImageID"].tolist())
    height, width, crop = config["height"], config["width"], config["crop"]
    images = image_cache(ev.paths, height, width, crop, cache, key=ev.fingerprint)
    probs = []
    for m in models:
        log.info("predicting %d eval images with %s", len(ev_labels), m)
        module = build_checkpoint(json.loads((m / "config.json").read_text()), m / "weights.safetensors")[0]
        probs.append(torch_predict(build_ensemble([module], [1.0]), images, 64, device))
    single = [_scores(ev_labels, p) for p in probs]
    own_fold = [_scores(oof["labels"][oof["fold"] == i], oof["probs"][oof["fold"] == i])
                for i in range(len(models))]
    pairs = [_scores(ev_labels, (probs[a] + probs[b]) / 2)
             for a, b in itertools.combinations(range(len(models)), 2)]
    vote_probs = np.mean(probs, axis=0)
    vote = _scores(ev_labels, vote_probs)
    out_of_fold = _scores(oof["labels"], oof["probs"])
    people = train.images["person_index"].to_numpy()[oof["rows"]]
    mean_single = {k: float(np.mean([s[k] for s in single])) for k in vote}
    mean_pair = {k: float(np.mean([s[k] for s in pairs])) for k in vote} if pairs else None
    return {
        "group": str(folder), "data": str(data_root), "k": len(models), "epochs": config["epochs"],
        "backbone": config["backbone"], "oof_images": int(len(oof["labels"])),
        "eval_images": int(len(ev_labels)),
        "out_of_fold": out_of_fold, "out_of_fold_per_model": own_fold,
        "eval_single": single, "eval_mean_single": mean_single, "eval_mean_pair": mean_pair,
        "eval_vote": vote,
        "gap": vote["macro_f1"] - out_of_fold["macro_f1"],
        "gap_people": mean_single["macro_f1"] - out_of_fold["macro_f1"],
        "gap_vote": vote["macro_f1"] - mean_single["macro_f1"],
        "out_of_fold_sd_people": macro_f1_people_sd(oof["labels"], oof["probs"], people),
        "oof_people": int(len(np.unique(people))),
        "trial_vote_gain": trial_vote_gain(folder.parent.parent, len(models)),
        "rule": rule_on_out_of_fold(oof, people, ev_labels, vote_probs),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    names = common.paired_names("--groups", args.groups, "group", "--data", args.data, "data folder", args.names)
    common.setup(args)
    device = str(resolve_device(args.device))
    start = time.perf_counter()
    groups = []
    for name, folder, data_root in zip(names, args.groups, args.data, strict=True):
        groups.append({"name": name, **measure(folder, data_root, args.cache, device)})
    rows = [[g["name"], g["k"], g["out_of_fold"]["macro_f1"], g["eval_mean_single"]["macro_f1"],
             g["eval_mean_pair"]["macro_f1"] if g["eval_mean_pair"] else "-", g["eval_vote"]["macro_f1"],
             g["gap"], g["gap_people"], g["gap_vote"], g["out_of_fold"]["old_f1"],
             g["eval_mean_single"]["old_f1"], g["eval_vote"]["old_f1"], g["out_of_fold_sd_people"],
             g["trial_vote_gain"]["gain"] if g["trial_vote_gain"] else "-"] for g in groups]
    print(common.table(["group", "K", "OOF", "eval single (mean)", "eval pair vote (mean)", "eval vote",
                        "gap", "of it: people", "of it: vote", "OOF old F1", "eval single old F1",
                        "eval vote old F1", "OOF SD (people)", "trials' vote gain (validation)"], rows))
    figures = {"groups": groups, "seconds": time.perf_counter() - start,
               "mean_gap": float(np.mean([g["gap"] for g in groups])),
               "mean_gap_vote": float(np.mean([g["gap_vote"] for g in groups]))}
    print("\nthe decision rule fitted on the out-of-fold predictions:")
    print(common.table(["group", "tau", "old-band offset", "OOF gain, cross-fitted: macro-F1 / old F1",
                        "eval vote: macro-F1 / old F1", "with the rule"],
                       [[g["name"], g["rule"]["tau"], g["rule"]["old_band_offset"],
                         "{macro_f1:+.4f} / {old_f1:+.4f}".format(**g["rule"]["out_of_fold_gain"]),
                         f"{g['eval_vote']['macro_f1']:.4f} / {g['eval_vote']['old_f1']:.4f}",
                         f"{g['rule']['eval_vote']['macro_f1']:.4f} / {g['rule']['eval_vote']['old_f1']:.4f}"]
                        for g in groups]))
    print(f"\nmean gap (eval vote - out of fold) {figures['mean_gap']:+.4f}, of it the vote's gain "
          f"{figures['mean_gap_vote']:+.4f} ({len(groups)} groups)")
    inputs = {"groups": [str(g) for g in args.groups], "data": [str(d) for d in args.data], "names": names,
              "device": device}
    common.save_result(NAME, inputs=inputs,
                       figures=figures, machine_info=common.machine(device), results_dir=args.results_dir,
                       notes=["no training: every figure is a prediction of saved fold models"])
    return figures


if __name__ == "__main__":
    main()
