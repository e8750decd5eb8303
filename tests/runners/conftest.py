"""Tiny synthetic image sets for the runner tests: 32x32 uint8, all 18 classes present."""

from __future__ import annotations

import numpy as np
import pytest

from runners import ImageSet, TrialConfig

SIZE = 32


def make_images(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is a distinct colour plus noise, so a few epochs learn something."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(18), n_per_class)
    palette = np.array([[(c % 3) * 100 + 20, (c // 3 % 2) * 180 + 30, (c // 6) * 100 + 10] for c in range(18)])
    palette = palette.astype(np.int16)
    noise = rng.integers(-25, 26, size=(len(labels), SIZE, SIZE, 3), dtype=np.int16)
    images = np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels


@pytest.fixture(scope="session")
def image_sets() -> tuple[ImageSet, ImageSet]:
    images, labels = make_images(n_per_class=6)
    images.setflags(write=False)  # like the shared read-only memmap: the runner must not write
    rng = np.random.default_rng(1)
    val_rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), 2, replace=False) for c in range(18)])
    train_rows = np.setdiff1d(np.arange(len(labels)), val_rows)
    return ImageSet(images, train_rows, labels[train_rows]), ImageSet(images, val_rows, labels[val_rows])


@pytest.fixture
def tiny_config() -> TrialConfig:
    return TrialConfig(backbone="test_resnet", height=SIZE, width=SIZE, batch_size=16, epochs=2, lr=3e-3, patience=5)
