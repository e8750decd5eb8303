"""Training images/s delivered to the model: the project's data path against the common baseline's.

Project: decode once into the uint8 memmap cache (search.data.image_cache), then per epoch the
runners' loader (BatchGather + make_loader + device_batches), uint8 to the device and the model's
own normalisation there; the augmentation set runs either per image in the loader's worker
processes (albumentations) or batched on the device (runners.device_augment, the default on a
GPU). Baseline (docs/domain.md, "the common baseline code"): a torch
Dataset that per item opens the JPEG with PIL, decodes, crops and resizes it, runs the same
albumentations set, then Normalize + ToTensor on the CPU; a DataLoader with the same number of
worker processes. Both run on the same training images of the same bench, side by side in one
run, a fixed number of batches after a warm-up; the ratio is the figure. The one-time cache build
is reported apart, with its amortisation over a study's epochs x trials.

    python -m benchmarks.data_path            # full-size bench: 2,700 people, 384x512 photos
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import DataLoader, Dataset

from benchmarks import common
from runners import (
    BatchGather,
    ClassifierWithPreprocess,
    ImageSet,
    default_num_workers,
    device_batches,
    get_augment,
    make_loader,
    resolve_device,
)
from runners.device_augment import device_augment
from search.data import TrainData, cache_files, crop_box, image_cache, load_image, load_train, split_people

log = logging.getLogger("benchmarks.data_path")
NAME = "data_path"


class BaselineDataset(Dataset[tuple[torch.Tensor, int]]):
    """The common baseline's dataset: every item decoded, resized, augmented and normalised anew."""

    def __init__(
        self, paths: list[str], labels: np.ndarray, height: int, width: int, crop: str, augment: A.Compose | None
    ) -> None:
        self.paths, self.labels = paths, labels
        self.size, self.box = (width, height), crop_box(crop)
        self.augment = augment
        self.to_tensor = A.Compose([A.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD), ToTensorV2()])

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int) -> Image.Image:
        with Image.open(self.paths[i]) as im:
            return im.convert("RGB")

    def resize(self, rgb: Image.Image) -> np.ndarray:
        top, left, bottom, right = self.box
        w, h = rgb.size
        box = (left * w, top * h, right * w, bottom * h)
        return np.asarray(rgb.resize(self.size, Image.Resampling.BILINEAR, box=box))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.resize(self.decode(i))
        if self.augment is not None:
            image = self.augment(image=image)["image"]
        return self.to_tensor(image=image)["image"], int(self.labels[i])


def normaliser(device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's first step, ClassifierWithPreprocess's own: uint8 NHWC (or float NCHW in [0, 255]) ->
    normalised float NCHW on the device."""
    return ClassifierWithPreprocess(torch.nn.Identity(), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD).to(device)


def timed_batches(batches: Iterator[tuple[torch.Tensor, torch.Tensor]], warmup: int, n: int,
                  device: torch.device, finish: Callable[[torch.Tensor], torch.Tensor]) -> tuple[int, float]:
    """(images, seconds) over ``n`` batches after ``warmup``; each batch ends as a float tensor on the device."""
    for _ in range(warmup):
        finish(next(batches)[0])
    common.synchronize(device)
    images, start = 0, time.perf_counter()
    for _ in range(n):
        x = finish(next(batches)[0])
        images += x.shape[0]
    common.synchronize(device)
    return images, time.perf_counter() - start


def project_rate(images: np.ndarray, rows: np.ndarray, labels: np.ndarray, args: Any, augment: str,
                 device: torch.device, normalise: bool = True, seed: int = 0,
                 augment_on: str = "loader") -> tuple[float, int]:
    """Images/s of the project's path; ``augment_on`` "loader" (worker processes) or "device" (batched)."""
    on_device = None
    if augment != "none" and augment_on == "device":
        on_device = device_augment(augment, args.height, args.width, seed=seed)
    transform = None if augment == "none" or on_device is not None else get_augment(augment, args.height, args.width, seed=0)
    workers = args.workers if transform is not None else 0  # as runners.fit: no workers for a plain gather
    loader = make_loader(BatchGather(ImageSet(images, rows, labels), transform), batch_size=args.batch_size,
                         shuffle=True, seed=seed, drop_last=True, num_workers=workers,
                         pin_memory=device.type == "cuda")
    batches = device_batches(loader, device, threaded=workers == 0)
    normalise_fn = normaliser(device) if normalise else (lambda x: x)

    def finish(x: torch.Tensor) -> torch.Tensor:
        return normalise_fn(on_device(x) if on_device is not None else x)

    try:
        n, seconds = timed_batches(batches, args.warmup, args.batches, device, finish)
    finally:
        batches.close()
    return n / seconds, workers


def baseline_rate(paths: list[str], labels: np.ndarray, args: Any, augment: str, device: torch.device,
                  seed: int = 0) -> float:
    transform = None if augment == "none" else get_augment(augment, args.height, args.width, seed=0)
    dataset = BaselineDataset(paths, labels, args.height, args.width, args.crop, transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed), num_workers=args.workers,
                        pin_memory=device.type == "cuda", prefetch_factor=2 if args.workers else None)
    it = iter(loader)
    batches = ((x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in it)
    try:
        n, seconds = timed_batches(batches, args.warmup, args.batches, device, lambda x: x)
    finally:
        batches.close()
        del batches, it  # the last reference to the iterator: its worker processes shut down
    return n / seconds


def stage_profile(data: TrainData, images: np.ndarray, rows: np.ndarray, args: Any, augment: str,
                  device: torch.device) -> dict[str, float]:
    """Milliseconds per image of each stage, one process, one image at a time (where the time goes)."""
    rng = np.random.default_rng(0)
    picks = rng.choice(rows, size=min(args.profile_images, len(rows)), replace=False)
    paths = [data.paths[r] for r in picks]
    ds = BaselineDataset(paths, np.zeros(len(paths), np.int64), args.height, args.width, args.crop, None)
    transform = get_augment(augment, args.height, args.width, seed=0) if augment != "none" else None
    clocks: dict[str, float] = {}

    def clock(name: str, fn: Callable[[int], Any]) -> list[Any]:
        fn(0)  # first calls pay one-time set-up (imports, lookup tables); keep it out of the figure
        start = time.perf_counter()
        out = [fn(i) for i in range(len(paths))]
        clocks[name] = 1000 * (time.perf_counter() - start) / len(paths)
        return out

    decoded = clock("baseline: PIL open + decode", ds.decode)
    resized = clock("baseline: crop + resize", lambda i: ds.resize(decoded[i]))
    augmented = clock(f"augment ({augment})", lambda i: transform(image=resized[i])["image"] if transform else resized[i])
    clock("baseline: Normalize + ToTensor (CPU, float32)", lambda i: ds.to_tensor(image=augmented[i])["image"])
    clock("project: read cached row (memmap)", lambda i: np.array(images[picks[i]]))
    batch = torch.from_numpy(np.stack(augmented[: args.batch_size])).to(device)
    norm = normaliser(device)
    common.synchronize(device)
    start = time.perf_counter()
    for _ in range(5):
        norm(batch)
    common.synchronize(device)
    clocks[f"project: normalise on {device.type} (per image of a batch)"] = 1000 * (time.perf_counter() - start) / (5 * len(batch))
    if augment != "none":
        on_device = device_augment(augment, args.height, args.width, seed=0)
        on_device(batch)
        common.synchronize(device)
        start = time.perf_counter()
        for _ in range(5):
            on_device(batch)
        common.synchronize(device)
        clocks[f"project: augment ({augment}) batched on {device.type} (per image of a batch)"] = (
            1000 * (time.perf_counter() - start) / (5 * len(batch)))
    clock("one-time: load_image (draft decode + crop + resize)",
          lambda i: load_image(paths[i], args.height, args.width, args.crop))
    return clocks


def read_files(paths: list[str] | list[Path], chunk: int = 1 << 24) -> tuple[float, int]:
    """Read files once end to end: (seconds, bytes). Puts both sides' inputs in the page cache, so
    neither is timed against the disk (a later epoch of a study finds them there too, RAM allowing)."""
    start, total = time.perf_counter(), 0
    buf = bytearray(chunk)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
    return time.perf_counter() - start, total


def build_cache(data: TrainData, args: Any, cache_dir: Path) -> tuple[np.ndarray, float, str]:
    """The project's cache and its build seconds (timed now, or read from its sidecar when it exists)."""
    paths = data.paths
    _, meta = cache_files(paths, args.height, args.width, args.crop, cache_dir, data.image_fingerprint)
    existed = meta.is_file()
    start = time.perf_counter()
    images = image_cache(paths, args.height, args.width, args.crop, cache_dir, key=data.image_fingerprint)
    seconds = time.perf_counter() - start
    if existed:
        seconds = float(json.loads(meta.read_text())["build_seconds"])
        how = f"read from {meta.name} (built earlier on this machine)"
    else:
        how = "timed in this run"
    return images, seconds, how


def build_parser() -> Any:
    p = common.base_parser(NAME, __doc__)
    common.add_bench_args(p, people=common.FULL_PEOPLE, size=common.FULL_SIZE)
    p.add_argument("--height", type=common.positive_int, default=384, help="training height (full.toml gpu: 384)")
    p.add_argument("--width", type=common.positive_int, default=288, help="training width (full.toml gpu: 288)")
    p.add_argument("--crop", default="face", help="named crop (studies use face)")
    p.add_argument("--augments", default="bccs,flip,none", help="comma-separated augmentation sets, one row each")
    p.add_argument("--batch-size", type=common.positive_int, default=64)
    p.add_argument("--workers", type=int, default=default_num_workers("bccs"),
                   help="loader worker processes on both sides (default: the runner's, min(4, cores - 1))")
    p.add_argument("--warmup", type=int, default=3, help="batches consumed before the clock starts")
    p.add_argument("--batches", type=common.positive_int, default=20, help="batches timed")
    p.add_argument("--profile-images", type=common.positive_int, default=64, help="images in the stage profile")
    p.add_argument("--study-epochs", type=common.positive_int, default=10, help="epochs per trial (full.toml)")
    p.add_argument("--study-trials", type=common.positive_int, default=200, help="trials per study (full.toml)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--cache-dir", type=Path, help="the decoded-image cache (default <work-root>/cache)")
    common.add_work_root_arg(p)
    p.add_argument("--rebuild-cache", action="store_true", help="time a fresh cache build in a temporary folder")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    common.setup(args)
    if args.workers < 0:
        raise SystemExit(f"--workers must be >= 0 but got {args.workers}")
    augments = [a.strip() for a in args.augments.split(",") if a.strip()]
    for a in augments:
        get_augment(a, args.height, args.width)  # an unknown set fails before any work
    device = resolve_device(args.device)
    machine = common.machine(device)
    bench = common.ensure_bench(args.bench, args.people, args.size, args.bench_seed)

    start = time.perf_counter()
    data = load_train(bench, verified_dir=args.work_root / "verified")
    load_seconds = time.perf_counter() - start
    args.work_root.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir or args.work_root / "cache"
    if args.rebuild_cache:
        cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=args.work_root))
    try:
        return _measure(args, augments, device, machine, bench, data, load_seconds, cache_dir)
    finally:
        if args.rebuild_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)


def _measure(args: Any, augments: list[str], device: torch.device, machine: dict[str, Any], bench: Path,
             data: TrainData, load_seconds: float, cache_dir: Path) -> dict[str, Any]:
    split = split_people(data, val_fraction=0.2, seed=0)
    rows, _ = split.indices(data)
    labels = data.labels[rows]
    images, build_seconds, build_how = build_cache(data, args, cache_dir)
    npy, _ = cache_files(data.paths, args.height, args.width, args.crop, cache_dir, data.image_fingerprint)
    cache_read_s, cache_bytes = read_files([npy])
    jpeg_read_s, jpeg_bytes = read_files([data.paths[r] for r in rows])
    log.info("page cache warmed: image cache %.2f GB in %.1f s, training photos %.2f GB in %.1f s",
             cache_bytes / 1e9, cache_read_s, jpeg_bytes / 1e9, jpeg_read_s)
    results = []
    for k, augment in enumerate(augments):
        log.info("augment %s: project path, %d batches of %d after %d warm-up", augment, args.batches,
                 args.batch_size, args.warmup)
        proj, proj_workers = project_rate(images, rows, labels, args, augment, device, seed=3 * k)
        # the same path stopping at uint8 on the device: on a GPU the normalisation is nearly free, on a
        # CPU-only machine it runs in the training process and shows up in the figure above
        proj_uint8, _ = project_rate(images, rows, labels, args, augment, device, normalise=False, seed=3 * k + 1)
        # the set batched on the device, loader reduced to the plain gather (the default on a GPU)
        proj_device = None
        if augment != "none":
            log.info("augment %s: project path, set on the device", augment)
            proj_device, _ = project_rate(images, rows, labels, args, augment, device, seed=3 * k + 1,
                                          augment_on="device")
        log.info("augment %s: baseline, %d batches of %d after %d warm-up", augment, args.batches,
                 args.batch_size, args.warmup)
        base = baseline_rate([data.paths[r] for r in rows], labels, args, augment, device, seed=3 * k + 2)
        results.append({"augment": augment, "project_images_per_s": proj, "baseline_images_per_s": base,
                        "speedup": common.ratio(proj, base), "project_uint8_images_per_s": proj_uint8,
                        "speedup_uint8": common.ratio(proj_uint8, base),
                        "project_device_augment_images_per_s": proj_device,
                        "speedup_device_augment": common.ratio(proj_device, base) if proj_device else None,
                        "project_workers": proj_workers, "baseline_workers": args.workers})
    profile = stage_profile(data, images, rows, args, augments[0], device)

    n_train, n_all = len(rows), len(data.paths)
    study_epochs = args.study_epochs * args.study_trials
    head = results[0]
    epoch_proj = n_train / head["project_images_per_s"]
    epoch_base = n_train / head["baseline_images_per_s"]
    saved = epoch_base - epoch_proj
    amortisation = {
        "cache_build_seconds": build_seconds,
        "cache_build_how": build_how,
        "cache_images": n_all,
        "cache_build_images_per_s": n_all / build_seconds if build_seconds > 0 else None,
        "epoch_seconds_project": epoch_proj,
        "epoch_seconds_baseline": epoch_base,
        "study_epochs": study_epochs,
        "build_seconds_per_study_epoch": build_seconds / study_epochs,
        "build_share_of_project_epoch": build_seconds / study_epochs / epoch_proj,
        "break_even_epochs": build_seconds / saved if saved > 0 else None,
        "cache_file_bytes": cache_bytes,
        "training_photo_bytes": jpeg_bytes,
        "page_cache_warm_seconds": {"image_cache": cache_read_s, "training_photos": jpeg_read_s},
    }

    print(f"\nData path: {n_train} training images of {bench} (source {args.size[0]}x{args.size[1]}) at "
          f"{args.height}x{args.width} (HxW), crop {args.crop}, batch {args.batch_size}, {args.batches} batches "
          f"after {args.warmup} warm-up, device {device}")
    print(common.describe_machine(machine) + "\n")
    def times(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}x"

    print(common.table(
        ["augment", "baseline img/s", "project img/s (set in loader)", "speed-up",
         "project uint8 img/s (set in loader, before normalise)", "speed-up (uint8)",
         "project img/s (set on device)", "speed-up (device)", "workers (project/baseline)"],
        [[r["augment"], r["baseline_images_per_s"], r["project_images_per_s"], times(r["speedup"]),
          r["project_uint8_images_per_s"], times(r["speedup_uint8"]),
          r["project_device_augment_images_per_s"] or "-", times(r["speedup_device_augment"]),
          f"{r['project_workers']}/{r['baseline_workers']}"] for r in results]))
    print(f"\nOne-time cache build: {n_all} images in {build_seconds:.1f} s ({build_how}); over "
          f"{args.study_trials} trials x {args.study_epochs} epochs that is {amortisation['build_seconds_per_study_epoch']:.3f} s "
          f"per epoch ({100 * amortisation['build_share_of_project_epoch']:.2f} % of a project epoch of "
          f"{epoch_proj:.1f} s; baseline epoch {epoch_base:.1f} s)"
          + (f"; it pays for itself after {amortisation['break_even_epochs']:.2f} epochs." if saved > 0 else "."))
    print(f"On disk: the image cache is {cache_bytes / 1e9:.2f} GB, the training photos {jpeg_bytes / 1e9:.2f} GB; "
          f"both were read once into the page cache before timing ({cache_read_s:.1f} s and {jpeg_read_s:.1f} s).")
    print("\nWhere the time goes (ms per image, one process, one image at a time):\n")
    print(common.table(["stage", "ms/image"], [[k, v] for k, v in profile.items()]))

    inputs = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "verbose"}
    inputs.update(bench=str(bench), train_images=n_train, load_train_seconds=load_seconds)
    notes = [
        ("project: image_cache (decode once) + runners.make_loader(BatchGather) + device_batches, uint8 to the "
        "device, normalised there; without augmentation it runs as runners.fit does (no worker processes, a "
        "background thread)"),
        ("baseline: Dataset with PIL open/convert/crop/resize + the same albumentations set + A.Normalize + "
        "ToTensorV2 per item, DataLoader(shuffle, drop_last) with --workers processes"),
        "timed batches start after --warmup batches, so worker start-up is excluded on both sides",
        ("both sides' files (the cache .npy, the training photos) are read once before timing, so neither is "
         "timed against the disk; each timed run uses its own shuffle seed"),
        ("project set-on-device column: the loader only gathers cached rows (no worker processes, a background "
         "thread) and runners.device_augment runs the set batched in torch on the device, then the normalisation; "
         "the default for trials on a GPU (runners.fit augment_on='auto'), the loader column is the CPU default"),
        ("project uint8 column: the same project path stopping at uint8 batches on the device (normalisation left "
        "to the model's first op); on CUDA that op is nearly free, on a CPU-only machine it runs in the training "
        "process while the baseline normalises in its workers"),
    ]
    path = common.save_result(NAME, inputs=inputs, machine_info=machine, notes=notes, results_dir=args.results_dir,
                              figures={"rows": results, "amortisation": amortisation, "stage_ms_per_image": profile})
    print(f"\nsaved {path}")
    return {"rows": results, "amortisation": amortisation, "profile": profile, "path": path}


if __name__ == "__main__":
    main()
