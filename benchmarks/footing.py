"""How much a trial's best-epoch validation score overstates it, against its last epoch's.

A trial keeps the epoch with the best validation macro-F1, chosen on the very people that score
it; the ensemble then compared that score with a fold group's out-of-fold score, which chooses
nothing. This script trains trials of a small search space on a synthetic bench (keep="best", so
each also returns its last epoch when that was not the best: runners.fit), and scores both epochs'
weights on the bench's eval labels (people no trial saw):

- optimism = validation macro-F1 - eval macro-F1, per trial, at the best epoch and at the last;
- the eval macro-F1 of the best-epoch and the last-epoch weights (what shipping the last costs).

    python -m benchmarks.footing --threads 1
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from runners import ImageSet, fit, resolve_device
from runners.config import TrialConfig
from search.data import image_cache, load_eval, load_train, split_people
from search.deploy.graph import build_checkpoint, build_ensemble, torch_predict
from search.ensembling.evalscore import find_eval_labels, read_eval_labels
from search.ensembling.selection import macro_f1

log = logging.getLogger("benchmarks.footing")
NAME = "footing"


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=300, size=(96, 128))
    common.add_work_root_arg(p)
    p.add_argument("--backbones", default="test_resnet,test_efficientnet", help="backbones drawn from")
    p.add_argument("--trials", type=common.positive_int, default=8)
    p.add_argument("--epochs", type=common.positive_int, default=6)
    p.add_argument("--patience", type=common.positive_int, default=2, help="early stopping, as the study files")
    p.add_argument("--image-size", type=common.positive_int, default=48, help="square training size")
    p.add_argument("--device", default="auto")
    return p


def _eval_f1(config: TrialConfig, state: dict[str, Any], images: np.ndarray, labels: np.ndarray, device: str) -> float:
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        module = build_checkpoint(config.to_dict(), path)[0]
        return macro_f1(labels, torch_predict(build_ensemble([module], [1.0]), images, 64, device))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    device = str(resolve_device(args.device))
    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)
    if find_eval_labels(bench) is None:
        raise SystemExit(f"{bench} has no eval labels: only a synthetic bench has them.")
    cache = args.work_root / "footing" / "cache"
    data = load_train(bench)
    split = split_people(data, val_fraction=0.2, seed=0)
    train_rows, val_rows = split.indices(data)
    size = args.image_size
    images = image_cache(data.paths, size, size, "full", cache, key=data.fingerprint)
    ev = load_eval(bench, check_images=False)
    ev_labels = read_eval_labels(find_eval_labels(bench), ev.info["ImageID"].tolist())  # type: ignore[arg-type]
    ev_images = image_cache(ev.paths, size, size, "full", cache, key=ev.fingerprint)
    rng = np.random.default_rng(args.bench_seed)
    backbones = args.backbones.split(",")
    rows, per_trial = [], []
    start = time.perf_counter()
    for t in range(args.trials):
        config = TrialConfig(
            backbone=backbones[t % len(backbones)], pretrained=False, height=size, width=size, crop="full",
            epochs=args.epochs, patience=args.patience, batch_size=32, seed=t,
            lr=float(np.exp(rng.uniform(np.log(1e-3), np.log(3e-2)))), age_cutoff=int(rng.choice([58, 59, 60])),
            ema_decay=common.study_ema_decay(), warmup_epochs=0.5,
        )
        train = ImageSet(images, train_rows, data.training_labels(config.age_cutoff)[train_rows])
        val = ImageSet(images, val_rows, data.labels[val_rows])
        result = fit(config, train, val, device=device)
        if result.status != "complete" or result.state_dict is None:
            log.warning("trial %d %s: %s", t, result.status, result.reason)
            continue
        last_state = result.last_state_dict or result.state_dict
        entry = {
            "trial": t, "backbone": config.backbone, "lr": config.lr, "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "val_best": result.best_macro_f1, "val_last": result.history[-1].val_macro_f1,
            "eval_best": _eval_f1(config, result.state_dict, ev_images, ev_labels, device),
            "eval_last": _eval_f1(config, last_state, ev_images, ev_labels, device),
        }
        per_trial.append(entry)
        rows.append([t, config.backbone, f"{config.lr:.4f}", f"{entry['best_epoch']}/{entry['epochs_run']}",
                     entry["val_best"], entry["eval_best"], entry["val_last"], entry["eval_last"]])
    optimism_best = float(np.mean([e["val_best"] - e["eval_best"] for e in per_trial]))
    optimism_last = float(np.mean([e["val_last"] - e["eval_last"] for e in per_trial]))
    figures = {
        "trials": per_trial,
        "mean_optimism_best_epoch": optimism_best,
        "mean_optimism_last_epoch": optimism_last,
        "mean_eval_best_epoch": float(np.mean([e["eval_best"] for e in per_trial])),
        "mean_eval_last_epoch": float(np.mean([e["eval_last"] for e in per_trial])),
        "seconds": time.perf_counter() - start,
    }
    print(common.table(["trial", "backbone", "lr", "best/ran", "val best", "eval best", "val last", "eval last"],
                       rows))
    print(f"\nmean optimism (validation - eval macro-F1): best epoch {optimism_best:+.4f}, last epoch "
          f"{optimism_last:+.4f}; mean eval macro-F1: best-epoch weights {figures['mean_eval_best_epoch']:.4f}, "
          f"last-epoch weights {figures['mean_eval_last_epoch']:.4f} ({len(per_trial)} trials)")
    inputs = {"bench": str(bench), "people": args.people, "size": args.size, "trials": args.trials,
              "epochs": args.epochs, "patience": args.patience, "image_size": size, "backbones": backbones,
              "val_fraction": 0.2, "device": device}
    common.save_result(NAME, inputs=inputs, figures=figures, machine_info=common.machine(device),
                       results_dir=args.results_dir,
                       notes=["synthetic bench: the gap is what choosing the best epoch on the validation people "
                              "adds to their score, not a figure for real faces"])
    return figures


if __name__ == "__main__":
    main()
