"""Batches of uint8 images from the decoded-image cache to the device.

Pieces (each usable alone, e.g. by a loader benchmark):

- ``ImageSet``: the cache array (possibly a read-only memmap shared by all trials), the rows of
  this set and their labels. Never copied whole; batches are gathered by index.
- ``BatchGather``: a map-style dataset whose items are *whole batches*: given a list of
  positions it returns ``(uint8 NHWC tensor, int64 labels)``. Without augmentation that is one
  vectorised gather; with augmentation each image goes through the albumentations pipeline.
  Given ``augmented`` flags (one per position), only the flagged images are augmented and the
  batch carries the flags third, for a set that runs on the device.
  When the set carries the people's real ages (the ordinal head learns from them), the batch
  ends with them as int64, after the flags if any.
- ``make_loader``: a DataLoader over ``BatchGather`` (seeded order, optional weighted sampler
  for oversampling, worker processes, pinned memory).
- ``device_batches``: iterates a loader one batch ahead, in a background thread when the loader
  has no workers, and copies the next batch to CUDA on a side stream while the current one
  computes. Images reach the device as uint8; normalisation happens there.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    WeightedRandomSampler,
    get_worker_info,
)

from runners.classes import NUM_CLASSES

Batch = tuple[torch.Tensor, ...]  # images, labels[, bool flags of the images to augment][, int64 ages]


@dataclass
class ImageSet:
    images: np.ndarray  # (N_all, H, W, 3) uint8 RGB; may be a shared read-only memmap
    rows: np.ndarray  # int64 indices into images used by this set
    labels: np.ndarray  # int64 class ids 0..17 aligned with rows
    ages: np.ndarray | None = None  # int64 real ages aligned with rows (what the ordinal head learns)

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.ages is not None:
            self.ages = np.asarray(self.ages, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def check(self, name: str, height: int | None = None, width: int | None = None) -> None:
        """Raise a ValueError naming ``name`` and the fault when this set cannot be trained on."""
        img = self.images
        if img.ndim != 4 or img.shape[3] != 3 or img.dtype != np.uint8:
            raise ValueError(f"{name}.images must be a uint8 (N, H, W, 3) RGB array but got {img.dtype} {img.shape}.")
        if height is not None and width is not None and img.shape[1:3] != (height, width):
            raise ValueError(
                f"{name}.images are {img.shape[1]}x{img.shape[2]} (HxW) but the config asks for {height}x{width}; "
                "build the image cache at the trial's resolution."
            )
        if self.rows.ndim != 1 or self.labels.shape != self.rows.shape:
            raise ValueError(
                f"{name}.rows and {name}.labels must be 1-D of equal length but got {self.rows.shape} and "
                f"{self.labels.shape}."
            )
        if self.ages is not None and self.ages.shape != self.rows.shape:
            raise ValueError(
                f"{name}.ages must hold one age per row ({len(self.rows)}) but has shape {self.ages.shape}."
            )
        if len(self.rows) == 0:
            raise ValueError(f"{name} set is empty: it needs at least one image.")
        bad = np.flatnonzero((self.rows < 0) | (self.rows >= len(img)))
        if bad.size:
            raise ValueError(
                f"{name}.rows[{bad[0]}] = {self.rows[bad[0]]} is outside the image cache of {len(img)} images."
            )
        bad = np.flatnonzero((self.labels < 0) | (self.labels >= NUM_CLASSES))
        if bad.size:
            raise ValueError(f"{name}.labels[{bad[0]}] = {self.labels[bad[0]]} is not a class id in 0..{NUM_CLASSES - 1}.")


class BatchGather(Dataset[Batch]):
    """Map-style dataset indexed by a *list* of positions into ``rows``; returns one batch."""

    def __init__(
        self, data: ImageSet, transform: A.Compose | None = None, augmented: np.ndarray | None = None
    ) -> None:
        if augmented is not None and np.shape(augmented) != (len(data),):
            raise ValueError(f"augmented must hold one flag per row ({len(data)}) but has shape {np.shape(augmented)}.")
        self.data = data
        self.transform = transform
        self.augmented = None if augmented is None else np.asarray(augmented, dtype=bool)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, positions: list[int]) -> Batch:  # type: ignore[override]
        pos = np.asarray(positions, dtype=np.int64)
        rows = self.data.rows[pos]
        labels = torch.from_numpy(self.data.labels[pos])
        flags = None if self.augmented is None else self.augmented[pos]
        images = self._images(rows, flags)
        batch = (images, labels) if flags is None else (images, labels, torch.from_numpy(flags))
        return batch if self.data.ages is None else (*batch, torch.from_numpy(self.data.ages[pos]))

    def _images(self, rows: np.ndarray, flags: np.ndarray | None) -> torch.Tensor:
        if self.transform is None or (flags is not None and not flags.any()):
            return torch.from_numpy(np.ascontiguousarray(self.data.images[rows]))
        height, width = self.data.images.shape[1:3]
        out = np.empty((len(rows), height, width, 3), dtype=np.uint8)
        for j, row in enumerate(rows):
            if flags is not None and not flags[j]:
                out[j] = self.data.images[row]
                continue
            image = self.transform(image=np.asarray(self.data.images[row]))["image"]
            if image.shape != out.shape[1:] or image.dtype != np.uint8:
                raise ValueError(
                    f"augmentation returned {image.dtype} {image.shape} for a {height}x{width} image; "
                    f"every set must return uint8 ({height}, {width}, 3)."
                )
            out[j] = image
        return torch.from_numpy(out)


def _seed_worker_transform(worker_id: int) -> None:
    # Each worker gets a copy of the pipeline with the same random state; reseed it from the
    # worker seed DataLoader derives from its (seeded) generator, new for every epoch.
    info = get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None:
        transform.set_random_seed(info.seed % 2**32)


def make_loader(
    data: BatchGather,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    sample_weights: np.ndarray | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """Seeded batches over ``data``; ``sample_weights`` switches to weighted sampling with
    replacement (oversampling), an epoch still being ``len(data)`` images."""
    generator = torch.Generator().manual_seed(seed)
    if sample_weights is not None:
        base = WeightedRandomSampler(
            torch.as_tensor(sample_weights, dtype=torch.double), len(data), replacement=True, generator=generator
        )
    elif shuffle:
        base = RandomSampler(data, generator=generator)
    else:
        base = SequentialSampler(data)
    return DataLoader(
        data,
        sampler=BatchSampler(base, batch_size=batch_size, drop_last=drop_last),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=_seed_worker_transform if num_workers > 0 else None,
        generator=generator,
        prefetch_factor=2 if num_workers > 0 else None,
    )


def device_batches(loader: Iterable[Batch], device: torch.device, *, threaded: bool = True) -> Iterator[Batch]:
    """Yield ``loader``'s batches on ``device``, the next one already on its way. Bool flags stay on
    the host: they steer the host-side draws of a device augmentation, without a device sync."""
    source = _ThreadPrefetch(loader) if threaded else None
    it = iter(source) if source is not None else iter(loader)
    try:
        if device.type == "cuda":
            yield from _cuda_ahead(it, device)
        else:
            for batch in it:
                yield _to(batch, device, non_blocking=False)
    finally:
        if source is not None:
            source.close()


def _cuda_ahead(it: Iterator[Batch], device: torch.device) -> Iterator[Batch]:
    stream = torch.cuda.Stream(device)

    def send(batch: Batch) -> Batch:
        with torch.cuda.stream(stream):
            return _to(batch, device, non_blocking=True)

    pending = next(it, None)
    ahead = send(pending) if pending is not None else None
    while ahead is not None:
        torch.cuda.current_stream(device).wait_stream(stream)
        current = ahead
        for t in current:
            if t.device.type == "cuda":
                t.record_stream(torch.cuda.current_stream(device))  # memory made on `stream`, used here
        pending = next(it, None)
        ahead = send(pending) if pending is not None else None
        yield current


def _to(batch: Batch, device: torch.device, *, non_blocking: bool) -> Batch:
    return tuple(t if t.dtype == torch.bool else t.to(device, non_blocking=non_blocking) for t in batch)


class _ThreadPrefetch:
    """Runs an iterable in a background thread, ``depth`` items ahead (memmap gathers and
    albumentations release the GIL for most of their work)."""

    _END = object()

    def __init__(self, iterable: Iterable[Batch], depth: int = 2) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iterable,), daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, iterable: Iterable[Batch]) -> None:
        try:
            for item in iterable:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
            return
        self._put(self._END)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
