"""What refitting adds: a study's trial refitted on K person folds and on every person, scored on
the bench's eval labels (people no model has seen) beside the study's own exported ensemble.

The script refits the chosen trials of an existing study with ``search.refit`` (resumable: models
already trained are reused, so a run started with ``python -m search.refit`` is finished, not
repeated), then scores on the bench's eval labels:

- the study's own exported ensemble (its bundle folder),
- each chosen trial alone (the study's checkpoint),
- its fold group (the average of its K fold models),
- its all-people refit,
- the ensemble selected from the study's trials with the refits (``search.ensemble``: fold groups
  as members, all-people weights in place of their trials'), exported as a bundle and predicted
  through it.

Beside each is the score it has without the eval labels: the validation macro-F1 the study
recorded, the out-of-fold macro-F1 of a fold group (over every person, and on the study's
validation people), or the honest estimate of an ensemble.

    python -m benchmarks.refit --name age_cutoff --workdir runs/h4-refit-s0 --trials 1 --folds 3 --threads 1
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from search.data import image_cache, load_eval
from search.deploy import Bundle
from search.deploy.graph import build_checkpoint, build_ensemble, torch_predict
from search.ensembling.candidates import load_candidates
from search.ensembling.evalscore import find_eval_labels, read_eval_labels
from search.ensembling.procedure import run_procedure
from runners.metrics import accuracy, macro_f1
from search.ensembling.selection import Candidate, SelectionSettings
from search.export import export_bundle, shipped_method
from search.refitting.store import RefitStore
from search.engine.budget import RefitBudget
from search.refitting.train import (
    DEFAULT_EPOCHS,
    EPOCH_RULES,
    choose_trials,
    open_refit,
    refit_all,
    refit_folds,
)
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore

log = logging.getLogger("benchmarks.refit")
NAME = "refit"
NOTES = (
    "training s: a refit's sum of epoch seconds in this benchmark's process (--threads); a trial's is its "
    "recorded s/epoch x epochs run in the study, under the study's threads and load, so the two do not compare",
    "a study trial's validation macro-F1 chose its best epoch and ranked it among the trials, so it is higher "
    "than the out-of-fold score of the same config; selection on the validation people inherits that bias",
)


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    p.add_argument(
        "--name", required=True, help="an existing stored study (python -m search.run) on a bench with eval labels"
    )
    p.add_argument("--storage", help="its Optuna storage URL (default: sqlite:///<workdir>/studies.db)")
    p.add_argument("--workdir", type=Path, required=True, help="the study's work folder")
    p.add_argument("--trials", type=int, nargs="+", required=True, help="trial numbers to refit")
    p.add_argument("--folds", type=common.positive_int, default=3, help="K person folds")
    p.add_argument("--no-all-people", action="store_true", help="skip the all-people refit")
    p.add_argument("--epochs", choices=EPOCH_RULES, default=DEFAULT_EPOCHS, help="search.refit --epochs")
    p.add_argument("--timeout", type=float, help="time budget of the refits in seconds")
    p.add_argument(
        "--baseline-bundle", type=Path, help="the study's exported bundle (default: <workdir>/bundle)"
    )
    p.add_argument("--out", type=Path, help="bundle with the refit members (default: <workdir>/bundle-refit)")
    p.add_argument("--device", default="cpu")
    return p


class EvalSet:
    """The bench's eval images (cached at each size used) and labels."""

    def __init__(self, data_root: Path, cache_dir: Path) -> None:
        labels_path = find_eval_labels(data_root)
        if labels_path is None:
            raise SystemExit(
                f"no eval_labels.csv beside {data_root}: this benchmark needs a bench (synthetic or real-face)."
            )
        self.data = load_eval(data_root, check_images=False)
        self.labels = read_eval_labels(labels_path, self.data.info["ImageID"].tolist())
        self.cache_dir = cache_dir

    def images(self, height: int, width: int, crop: str) -> np.ndarray:
        return image_cache(self.data.paths, height, width, crop, self.cache_dir, key=self.data.fingerprint)

    def score(self, probs: np.ndarray) -> tuple[float, float]:
        return macro_f1(self.labels, probs), accuracy(self.labels, probs)


def predict_files(config: dict[str, Any], files: tuple[Path, ...], ev: EvalSet, device: str) -> np.ndarray:
    """The average softmax of the networks in ``files`` on the eval images."""
    modules = [build_checkpoint(config, f)[0] for f in files]
    images = ev.images(int(config["height"]), int(config["width"]), str(config["crop"]))
    return torch_predict(build_ensemble(modules, [1.0] * len(modules)), images, 64, device)


def predict_bundle(folder: Path, ev: EvalSet, device: str) -> np.ndarray:
    bundle = Bundle.load(folder)
    return bundle.predict_proba(ev.images(bundle.height, bundle.width, bundle.crop), batch_size=64, device=device)


def own_checkpoint(candidate: Candidate, trials: TrialStore) -> Candidate:
    """The candidate with its trial's own checkpoint and config, where an all-people refit replaced them."""
    if candidate.refit != "all":
        return candidate
    n = candidate.number
    return dataclasses.replace(
        candidate, weights=trials.weights_path(n), config=trials.load_config(n), refit=""
    )


def training_seconds(folder: Path) -> float:
    history = json.loads((folder / "result.json").read_text())["history"]
    return float(sum(h["seconds"] for h in history))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    machine = common.machine(args.device)
    ctx = open_refit(args.name, args.storage, args.workdir)
    storage = args.storage or f"sqlite:///{args.workdir / 'studies.db'}"
    trials = choose_trials(ctx.study, args.trials)
    budget = RefitBudget(args.timeout)
    start = time.perf_counter()
    refits = []
    for trial in trials:
        refits.append(refit_folds(ctx, trial, args.folds, args.epochs, budget, args.device))
        if not args.no_all_people:
            refits.append(refit_all(ctx, trial, args.epochs, budget, args.device))
    refit_wall = time.perf_counter() - start
    unfinished = [r for r in refits if not r["complete"]]
    if unfinished:
        raise SystemExit(
            f"{len(unfinished)} refit(s) did not fit in --timeout; run the same command again to finish them."
        )

    ev = EvalSet(Path(ctx.attrs.data_root), args.workdir / "cache")
    rows: list[list[Any]] = []
    figures: dict[str, Any] = {"refits": refits, "refit_wall_seconds_this_run": refit_wall, "entries": []}

    def add(
        entry: str, networks: int, without_eval: str, probs: np.ndarray, seconds: float | None, extra: dict
    ) -> None:
        f1, acc = ev.score(probs)
        figures["entries"].append(
            {
                "entry": entry,
                "networks": networks,
                "score_without_eval_labels": without_eval,
                "eval_macro_f1": f1,
                "eval_accuracy": acc,
                "training_seconds": seconds,
                **extra,
            }
        )
        rows.append(
            [
                entry,
                networks,
                without_eval,
                f"{f1:.4f}",
                f"{acc:.4f}",
                "-" if seconds is None else f"{seconds:.0f}",
            ]
        )

    baseline = args.baseline_bundle or args.workdir / "bundle"
    manifest = json.loads((baseline / "manifest.json").read_text())
    honest = manifest["metrics"]["honest"]["scores"]
    shipped = "selected + decision rule" if manifest.get("decision_rule") else "selected ensemble"
    honest_f1 = next(s["macro_f1"] for s in honest if s["method"] == shipped)
    add(
        "study's exported ensemble",
        len(manifest["members"]),
        f"honest {honest_f1:.4f} (cv)",
        predict_bundle(baseline, ev, args.device),
        None,
        {"members": [m["trial"] for m in manifest["members"]]},
    )

    for trial in trials:
        store = RefitStore(ctx.trials, trial.number)
        attrs = TrialAttrs.read(trial)
        config = dict(attrs.config or {})
        own = ctx.trials.weights_path(trial.number)
        spent = float(attrs.seconds_per_epoch or 0) * int(attrs.epochs_run or 0)
        add(
            f"trial {trial.number} alone",
            1,
            f"validation {trial.value:.4f}",
            predict_files(config, (own,), ev, args.device),
            spent,
            {},
        )
        folds = [store.fold_dir(args.folds, i) for i in range(args.folds)]
        summary = store.load_summary(args.folds)
        fold_config = store.load_model(folds[0]).config
        add(
            f"trial {trial.number} fold group (K={args.folds}, {fold_config['epochs']} epochs)",
            args.folds,
            f"out-of-fold {summary['oof_macro_f1']:.4f} (all people), {summary['oof_macro_f1_validation_people']:.4f} "
            "(validation people)",
            predict_files(fold_config, tuple(f / "weights.safetensors" for f in folds), ev, args.device),
            sum(training_seconds(f) for f in folds),
            {"oof": summary},
        )
        if not args.no_all_people:
            add(
                f"trial {trial.number} all-people refit ({fold_config['epochs']} epochs)",
                1,
                f"none (trial's {trial.value:.4f} stands)",
                predict_files(
                    store.load_model(store.all_dir()).config,
                    (store.all_dir() / "weights.safetensors",),
                    ev,
                    args.device,
                ),
                training_seconds(store.all_dir()),
                {},
            )

    pool = load_candidates(args.name, storage, args.workdir)
    out = args.out or args.workdir / "bundle-refit"
    # First the fold groups alone (every trial keeps its own checkpoint), then as search.ensemble
    # takes them: fold groups joined and all-people weights in place of their trials'.
    plain = dataclasses.replace(pool, candidates=[own_checkpoint(c, ctx.trials) for c in pool.candidates])
    names = ""
    for entry, candidates_pool, folder in (
        ("ensemble selected with the fold groups", plain, out.with_name(out.name + "-folds-only")),
        ("ensemble selected with the refits", pool, out),
    ):
        if candidates_pool is plain and args.no_all_people:
            continue
        outcome = run_procedure(candidates_pool, SelectionSettings(), "cv", seed=0)
        method = shipped_method(outcome, "auto")
        exported = export_bundle(outcome, folder, overwrite=True, decision_rule="auto")
        choice = outcome.choice(method)
        names = ", ".join(
            f"{outcome.candidates[m].name} ({w:.2f})"
            for m, w in zip(choice.members, choice.weights, strict=True)
        )
        add(
            entry,
            sum(len(m.checkpoints) for m in exported.members),  # networks: a fold group holds K
            f"honest {outcome.honest.score(method).macro_f1:.4f} (cv)",
            predict_bundle(folder, ev, args.device),
            None,
            {"members": names, "method": method, "candidates": [c.name for c in outcome.candidates]},
        )

    print(
        f"\nRefit: study {args.name} in {args.workdir}, trials {args.trials}, K={args.folds}, epochs = {args.epochs}; "
        f"scored on {len(ev.labels)} eval images of {ev.data.root}"
    )
    print(common.describe_machine(machine) + "\n")
    print(
        common.table(
            [
                "entry",
                "networks",
                "score without eval labels",
                "eval macro-F1",
                "eval accuracy",
                "training s",
            ],
            rows,
        )
    )
    print(f"\nensemble with the refits: {names}")
    for note in NOTES:
        print(f"- {note}")
    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "verbose"}
    inputs["data_root"] = ctx.attrs.data_root
    path = common.save_result(
        NAME,
        inputs=inputs,
        figures=figures,
        machine_info=machine,
        notes=[*NOTES, *outcome.notes],
        results_dir=args.results_dir,
    )
    print(f"\nsaved {path}")
    return figures


if __name__ == "__main__":
    main()
