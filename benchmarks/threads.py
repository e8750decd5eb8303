"""The main command's thread rule against torch's default, next to one competing busy process.

One training epoch of the age_cutoff CPU profile's trial (tf_efficientnet_lite0 with its offline
weights, its input size, crop and augmentation, so the loader starts its worker process) on
``--images`` rows of the synthetic bench, timed in a fresh process per setting:

- before: torch's default intra-op threads (one per core), as the main command ran until it
  picked them itself;
- after: ``search.common.threads.default_threads()``, the rule ``search.run`` now applies
  (``max(1, cores - loader workers)``).

Each setting is timed with the machine otherwise idle and with one competing process spinning on
a core (``--busy 1``), which is what made an epoch up to 9x slower.

    python -m benchmarks.threads
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks import common

log = logging.getLogger("benchmarks.threads")
NAME = "threads"
_SPIN = "while True: pass"


def child(threads: int, images: int, bench: str) -> dict[str, Any]:
    """One epoch in this process with ``threads`` torch threads; returns the timing."""
    import torch

    torch.set_num_threads(threads)
    from runners import ImageSet, default_num_workers, fit
    from search.data import image_cache, load_train, split_people
    from search.studyfile.parse import load_study_spec

    config = load_study_spec("age_cutoff", "cpu").base_config().replace(
        backbone="tf_efficientnet_lite0", epochs=1, ema_decay=0.0, warmup_epochs=0.0)
    data = load_train(bench)
    train_rows, val_rows = split_people(data, 0.2, 0).indices(data)
    train_rows = train_rows[:images]
    cache = image_cache(data.paths, config.height, config.width, config.crop, common.RUNS_DIR / "cache",
                        key=data.image_fingerprint)
    start = time.perf_counter()
    result = fit(config, ImageSet(cache, train_rows, data.labels[train_rows]),
                 ImageSet(cache, val_rows[:64], data.labels[val_rows[:64]]), device="cpu")
    seconds = time.perf_counter() - start
    return {"threads": threads, "torch_threads": torch.get_num_threads(), "images": int(len(train_rows)),
            "seconds": seconds, "ms_per_image": 1000 * seconds / len(train_rows), "status": result.status,
            "loader_workers": default_num_workers(config.augment)}


def measure(threads: int, busy: int, images: int, bench: str) -> dict[str, Any]:
    spinners = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(busy)]
    try:
        done = subprocess.run([sys.executable, "-m", "benchmarks.threads", "--child", str(threads),
                               "--images", str(images), "--bench", bench],
                              capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": ""})
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "busy": busy}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=300, size=(96, 128))
    p.add_argument("--images", type=int, default=640, help="training images in the timed epoch")
    p.add_argument("--busy", type=int, default=1, help="competing busy processes in the loaded runs")
    p.add_argument("--child", type=int, help=argparse_hidden())
    args = p.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.images, str(args.bench))))
        return {}
    common.setup(args)
    from search.common.threads import default_threads

    bench = str(common.ensure_bench(args.bench, args.people, args.size, args.bench_seed))
    settings = {"before: torch default": os.cpu_count() or 1, "after: search.run's rule": default_threads()}
    rows, runs = [], []
    for busy in (0, args.busy):
        for label, threads in settings.items():
            run = {"setting": label, **measure(threads, busy, args.images, bench)}
            runs.append(run)
            rows.append([label, threads, busy, f"{run['seconds']:.1f}", f"{run['ms_per_image']:.1f}"])
            log.info("%s", rows[-1])
    print(common.table(["setting", "torch threads", "busy processes", "epoch s", "ms/image"], rows))
    loaded = {r["setting"]: r["seconds"] for r in runs if r["busy"] == args.busy}
    before, after = loaded["before: torch default"], loaded["after: search.run's rule"]
    print(f"\nwith {args.busy} busy process(es): {before:.1f} s before, {after:.1f} s after "
          f"({common.ratio(before, after):.2f}x)")
    figures = {"runs": runs, "loaded_before_s": before, "loaded_after_s": after,
               "loaded_speedup": common.ratio(before, after)}
    path = common.save_result(NAME, inputs={"images": args.images, "busy": args.busy, "bench": bench},
                              figures=figures, machine_info=common.machine(), results_dir=args.results_dir,
                              notes=["one epoch of the age_cutoff CPU profile's trial, fresh process per setting; "
                                     "OMP_NUM_THREADS unset in the child so the setting decides"])
    print(f"saved {path}")
    return figures


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
