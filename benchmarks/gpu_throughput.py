"""Training images/s through the runner against a bare loop on tensors already on the device.

Runner: ``runners.fit`` itself, unchanged, on an ImageSet of uint8 images (random pixels; the
loader's work does not depend on them) at the study resolution: the memmap-style gather, the
loader, ``device_batches`` (pinned memory, side-stream copy), normalisation on the device, bf16
autocast and channels_last on CUDA, AdamW, the loss, the NaN check, and the moving average of
the weights that the study files keep (``--ema-decay``). Its own per-epoch figure (training
images over training wall time, validation excluded) of the last epoch is used, so the
first epoch's warm-up (cuDNN, allocator) is left out. The time the loop waits for data is read by
wrapping ``device_batches`` as fit sees it: host time blocked in ``next()`` on the training
batches, as a share of the epoch's training time (what timm's train script calls data time).

Bare: the same TrialModel, optimiser and loss, on one random float batch already on the device,
channels_last, bf16 autocast (timm's benchmark script measures training this way); timed with
``torch.cuda.synchronize`` before and after.

Without CUDA it runs on the CPU with a tiny batch and few steps, and says so in its output and
JSON: the CPU figures say nothing about the goal (>= 85 % of bare, data wait < 5 %) on a GPU.

    python -m benchmarks.gpu_throughput                    # on a CUDA machine
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from benchmarks import common
from runners import (
    NUM_CLASSES,
    FocalLoss,
    ImageSet,
    TrialConfig,
    autocast_dtype,
    build_model,
    default_num_workers,
    make_optimizer,
    resolve_device,
)

runner_fit = importlib.import_module("runners.training")  # the training loop's module
log = logging.getLogger("benchmarks.gpu_throughput")
NAME = "gpu_throughput"


class DataWait:
    """Wraps the device_batches fit uses and adds up host time blocked on training batches."""

    def __init__(self) -> None:
        self.epochs: list[float] = []  # seconds waited per training epoch
        self._inner = runner_fit.device_batches

    def __enter__(self) -> DataWait:  # noqa: PYI034 - a final helper class, not meant for subclassing
        runner_fit.device_batches = self._wrapped  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        runner_fit.device_batches = self._inner  # type: ignore[assignment]

    def _wrapped(self, loader: Iterable[Any], device: torch.device, *, threaded: bool = True) -> Iterator[Any]:
        training = not isinstance(getattr(getattr(loader, "sampler", None), "sampler", None),
                                  torch.utils.data.SequentialSampler)  # fit's validation loader is sequential
        inner = self._inner(loader, device, threaded=threaded)
        waited = 0.0
        try:
            while True:
                start = time.perf_counter()
                try:
                    batch = next(inner)
                except StopIteration:
                    break
                waited += time.perf_counter() - start
                yield batch
        finally:
            inner.close()
            if training:
                self.epochs.append(waited)


def runner_rate(config: TrialConfig, images: np.ndarray, device: torch.device, workers: int) -> dict[str, float]:
    n = len(images)
    rng = np.random.default_rng(0)
    train = ImageSet(images, np.arange(n - config.batch_size), rng.integers(0, NUM_CLASSES, n - config.batch_size))
    val = ImageSet(images, np.arange(n - config.batch_size, n), rng.integers(0, NUM_CLASSES, config.batch_size))
    with DataWait() as wait:
        result = runner_fit.fit(config, train, val, device=device, num_workers=workers)
    if result.status != "complete" or len(result.history) != config.epochs:
        raise RuntimeError(f"runners.fit ended {result.status} ({result.reason}) after {len(result.history)} epochs")
    last = result.history[-1]
    train_seconds = len(train) // config.batch_size * config.batch_size / last.train_images_per_s
    return {"images_per_s": last.train_images_per_s, "data_wait_share": wait.epochs[-1] / train_seconds,
            "epoch_train_seconds": train_seconds, "first_epoch_images_per_s": result.history[0].train_images_per_s}


def bare_rate(config: TrialConfig, device: torch.device, warmup: int, steps: int) -> dict[str, float]:
    """timm benchmark style: one random batch on the device, channels_last, bf16 autocast."""
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # as runners.fit does on CUDA only
    model.train()
    # channels_last input on every device: the runner's model gets its uint8 NHWC batch permuted to NCHW,
    # which is channels_last in memory, so the bare loop feeds the same layout
    x = torch.randn(config.batch_size, 3, config.height, config.width, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, NUM_CLASSES, (config.batch_size,), device=device)
    criterion = FocalLoss(config.focal_gamma).to(device)
    optimizer = make_optimizer(model, config)
    amp = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

    def step() -> None:
        with torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext():
            loss = criterion(model(x), y)
        runner_fit.optimizer_step(loss, optimizer, scaler)

    for _ in range(warmup):
        step()
    common.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    common.synchronize(device)
    seconds = time.perf_counter() - start
    return {"images_per_s": steps * config.batch_size / seconds, "seconds": seconds}


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    p.add_argument("--models", default="resnext50_32x4d,efficientnet_b0", help="comma-separated timm names")
    p.add_argument("--height", type=common.positive_int, default=512)
    p.add_argument("--width", type=common.positive_int, default=384)
    p.add_argument("--batch-size", type=common.positive_int, help="default 64 on CUDA, 2 on CPU")
    p.add_argument("--steps", type=common.positive_int, help="training steps per epoch / timed bare steps "
                                                             "(default 40 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, help="bare-loop warm-up steps (default 10 on CUDA, 1 on CPU)")
    p.add_argument("--epochs", type=int, default=2, help="runner epochs; the last one is measured (>= 2)")
    p.add_argument("--augment", default="none", help="augmentation set of the runner side (default none)")
    ema_decay = common.study_ema_decay()
    p.add_argument("--ema-decay", type=float, default=ema_decay,
                   help=f"the runner side keeps a moving average of the weights as the study files do (default "
                        f"{ema_decay}; 0 = off); the bare loop never does")
    p.add_argument("--workers", type=int, help="runner loader workers (default: the runner's own choice)")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="set torch.backends.cudnn.benchmark on both sides (timm's benchmark does; fit does not)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    if args.epochs < 2:
        raise SystemExit(f"--epochs must be at least 2 (the first epoch is warm-up) but got {args.epochs}")
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch_size or (64 if cuda else 2)
    steps = args.steps or (40 if cuda else 3)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    workers = args.workers if args.workers is not None else default_num_workers(args.augment)
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    machine = common.machine(device)
    banner = None if cuda else (
        "NO GPU: this ran on the CPU with a tiny batch and few steps; the figures only show the script works, "
        "they say nothing about GPU throughput or the goal (>= 85 % of bare, data wait < 5 %).")
    if banner:
        log.warning(banner)
    # random pixels as the cache; (steps + 1) batches: one epoch of `steps` training batches plus validation
    images = np.random.default_rng(0).integers(0, 256, ((steps + 1) * batch, args.height, args.width, 3),
                                               dtype=np.uint8)
    results = []
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        config = TrialConfig(backbone=model_name, pretrained=False, height=args.height, width=args.width,
                             batch_size=batch, epochs=args.epochs, patience=args.epochs, augment=args.augment,
                             lr=1e-3, warmup_epochs=0.0, ema_decay=args.ema_decay)
        log.info("%s: runner (runners.fit, %d epochs of %d steps, batch %d)", model_name, args.epochs, steps, batch)
        run = runner_rate(config, images, device, workers)
        log.info("%s: bare loop (%d warm-up + %d steps)", model_name, warmup, steps)
        bare = bare_rate(config, device, warmup, steps)
        if cuda:
            torch.cuda.empty_cache()  # the next model starts from an empty cache on both sides
        results.append({"model": model_name, "runner_images_per_s": run["images_per_s"],
                        "bare_images_per_s": bare["images_per_s"],
                        "runner_share_of_bare": common.ratio(run["images_per_s"], bare["images_per_s"]),
                        "data_wait_share": run["data_wait_share"],
                        "runner_first_epoch_images_per_s": run["first_epoch_images_per_s"],
                        "goal_met": cuda and run["images_per_s"] >= 0.85 * bare["images_per_s"]
                        and run["data_wait_share"] < 0.05})
    precision = f"{autocast_dtype(device)} autocast, channels_last" if cuda else "float32, channels_last input (CPU)"
    print(f"\nTraining throughput at {args.height}x{args.width} (HxW), batch {batch}, {precision}, device {device}"
          f"{'' if not banner else ' - CPU FALLBACK'}")
    print(common.describe_machine(machine))
    if banner:
        print(banner)
    print()
    print(common.table(["model", "runner img/s", "bare img/s", "runner / bare", "data wait", "goal met"], [
        [r["model"], r["runner_images_per_s"], r["bare_images_per_s"], f"{100 * r['runner_share_of_bare']:.1f} %",
         f"{100 * r['data_wait_share']:.1f} %", "yes" if r["goal_met"] else ("n/a (CPU)" if not cuda else "no")]
        for r in results]))
    inputs = {k: v for k, v in vars(args).items() if k not in ("verbose", "results_dir")}
    inputs.update(batch_size=batch, steps=steps, warmup=warmup, workers=workers, precision=precision)
    notes = [banner] if banner else []
    notes += [
        ("runner = runners.fit unchanged; its last-epoch train_images_per_s; data wait = host time blocked on "
         "the next training batch (device_batches wrapped), share of that epoch's training time"),
        "bare = same TrialModel + make_optimizer + FocalLoss on one random float batch on the device",
    ]
    path = common.save_result(NAME, inputs=inputs, figures={"cpu_fallback": not cuda, "rows": results},
                              machine_info=machine, notes=notes, results_dir=args.results_dir)
    print(f"\nsaved {path}")
    return {"cpu_fallback": not cuda, "rows": results}


if __name__ == "__main__":
    main()
