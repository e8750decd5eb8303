from __future__ import annotations

import numpy as np
import pytest
import torch

from runners import BatchGather, ImageSet, device_batches, get_augment, make_loader


def test_vectorised_gather_matches_rows_and_memmap(tmp_path, image_sets) -> None:
    train, _ = image_sets
    path = tmp_path / "cache.u8"
    mm = np.memmap(path, dtype=np.uint8, mode="w+", shape=train.images.shape)
    mm[:] = train.images
    mm.flush()
    shared = ImageSet(np.memmap(path, dtype=np.uint8, mode="r", shape=train.images.shape), train.rows, train.labels)
    x, y = BatchGather(shared)[[3, 0, 5]]
    assert x.dtype == torch.uint8 and x.shape == (3, 32, 32, 3)
    assert np.array_equal(x.numpy(), train.images[train.rows[[3, 0, 5]]])
    assert y.tolist() == train.labels[[3, 0, 5]].tolist()


def test_loader_covers_every_validation_image_without_drop_last(image_sets) -> None:
    _, val = image_sets
    loader = make_loader(BatchGather(val), batch_size=7, shuffle=False, seed=0)
    labels = torch.cat([y for _, y in device_batches(loader, torch.device("cpu"))])
    assert labels.tolist() == val.labels.tolist()  # 36 images, batches of 7: the last one holds 1


def test_shuffled_order_is_seeded(image_sets) -> None:
    train, _ = image_sets

    def order(seed: int) -> list[int]:
        loader = make_loader(BatchGather(train), batch_size=8, shuffle=True, seed=seed)
        return torch.cat([y for _, y in loader]).tolist()

    assert order(3) == order(3) and order(3) != order(4)


def test_weighted_sampler_oversamples(image_sets) -> None:
    train, _ = image_sets
    weights = np.where(train.labels == 17, 50.0, 1.0)
    loader = make_loader(BatchGather(train), batch_size=8, shuffle=True, seed=0, sample_weights=weights)
    labels = torch.cat([y for _, y in loader])
    assert len(labels) == len(train)
    assert (labels == 17).float().mean() > 0.5


def test_augmented_batches_with_worker_processes(image_sets) -> None:
    train, _ = image_sets
    plain = torch.from_numpy(train.images[train.rows])

    def epoch(name: str) -> torch.Tensor:
        data = BatchGather(train, get_augment(name, 32, 32, seed=0))
        loader = make_loader(data, batch_size=16, shuffle=False, seed=0, num_workers=2)
        return torch.cat([x for x, _ in device_batches(loader, torch.device("cpu"), threaded=False)])

    first = epoch("strong")
    assert first.shape == (len(train), 32, 32, 3) and first.dtype == torch.uint8
    assert torch.equal(first, epoch("strong"))  # workers reseeded from the loader's seed: reproducible
    assert not torch.equal(first, plain)  # and augmented
    # Each worker starts from a copy of the pipeline: unless reseeded, worker 0 (batch 0) and
    # worker 1 (batch 1) would flip exactly the same positions.
    flips = epoch("flip")
    flipped = [bool(torch.equal(flips[i], plain[i].flip(1))) for i in range(32)]
    assert any(flipped) and flipped[:16] != flipped[16:32]


def test_consumer_stopping_early_ends_the_prefetch_thread(image_sets) -> None:
    train, _ = image_sets
    loader = make_loader(BatchGather(train), batch_size=4, shuffle=False, seed=0)
    batches = device_batches(loader, torch.device("cpu"))
    next(batches)
    batches.close()  # must not hang on the full queue


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda s: ImageSet(s.images, s.rows, s.labels[:-1]), "equal length"),
        (lambda s: ImageSet(s.images, s.rows + 10_000, s.labels), "outside the image cache"),
        (lambda s: ImageSet(s.images, s.rows, s.labels + 18), "not a class id"),
        (lambda s: ImageSet(s.images.astype(np.float32), s.rows, s.labels), "uint8"),
    ],
)
def test_bad_image_sets_are_named(image_sets, change, match) -> None:
    with pytest.raises(ValueError, match=rf"train.*{match}|{match}"):
        change(image_sets[0]).check("train", 32, 32)


def test_wrong_resolution_is_named(image_sets) -> None:
    with pytest.raises(ValueError, match=r"val.images are 32x32.*64x48"):
        image_sets[1].check("val", 64, 48)


def test_only_flagged_positions_are_augmented_and_flags_stay_on_the_host(image_sets) -> None:
    train, _ = image_sets
    flags = np.arange(len(train)) % 3 == 0
    data = BatchGather(train, get_augment("strong", 32, 32, seed=0), augmented=flags)
    loader = make_loader(data, batch_size=16, shuffle=False, seed=0)
    x, y, f = (torch.cat(parts) for parts in zip(*device_batches(loader, torch.device("cpu"))))
    assert f.dtype == torch.bool and f.tolist() == flags.tolist()
    plain = torch.from_numpy(train.images[train.rows])
    assert torch.equal(x[~f], plain[~f])
    assert not torch.equal(x[f], plain[f])
    with pytest.raises(ValueError, match="one flag per row"):
        BatchGather(train, augmented=flags[:-1])
