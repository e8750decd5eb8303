"""benchmarks/data_path.py end to end on a tiny bench: the baseline Dataset gives the project's images, and both sides are timed and saved (no timing asserted)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from benchmarks import data_path
from search.data import load_image, load_train
from tests.benchmarks.conftest import saved_result


def test_baseline_dataset_gives_the_images_the_project_caches(tiny_bench: Path) -> None:
    data = load_train(tiny_bench)
    paths = data.paths[:5]
    ds = data_path.BaselineDataset(paths, np.zeros(5, np.int64), 32, 24, "face", augment=None)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)
    for i, path in enumerate(paths):
        x, _ = ds[i]
        cached = torch.from_numpy(load_image(path, 32, 24, "face").copy()).permute(2, 0, 1).float() / 255
        assert x.shape == (3, 32, 24)
        torch.testing.assert_close(x, (cached - mean) / std, atol=1e-5, rtol=0)
    # the project's device-side normalisation gives the same tensor from the uint8 batch
    batch = torch.from_numpy(np.stack([load_image(p, 32, 24, "face") for p in paths]))
    torch.testing.assert_close(data_path.normaliser(torch.device("cpu"))(batch),
                               torch.stack([ds[i][0] for i in range(5)]), atol=1e-5, rtol=0)


def test_data_path_runs_and_saves_both_sides(bench_args: list[str], tmp_path: Path) -> None:
    out = data_path.main(bench_args + ["--height", "32", "--width", "24", "--batch-size", "8", "--batches", "2",
                                       "--warmup", "1", "--workers", "0", "--profile-images", "4",
                                       "--work-root", str(tmp_path / "work"), "--device", "cpu"])
    saved = saved_result(tmp_path, "data_path")
    assert [r["augment"] for r in saved["figures"]["rows"]] == ["bccs", "flip", "none"]
    for row in saved["figures"]["rows"]:
        assert row["project_images_per_s"] > 0 and row["baseline_images_per_s"] > 0
        assert row["speedup"] == pytest.approx(row["project_images_per_s"] / row["baseline_images_per_s"])
        on_device = row["project_device_augment_images_per_s"]
        assert (on_device is None) == (row["augment"] == "none")  # no set, nothing to run on the device
        if on_device is not None:
            assert row["speedup_device_augment"] == pytest.approx(on_device / row["baseline_images_per_s"])
    assert "project: augment (bccs) batched on cpu (per image of a batch)" in saved["figures"]["stage_ms_per_image"]
    amort = saved["figures"]["amortisation"]
    assert amort["cache_images"] == 504 and amort["cache_build_how"] == "timed in this run"
    assert "baseline: PIL open + decode" in saved["figures"]["stage_ms_per_image"]
    assert out["path"] == tmp_path / "results" / "data_path.json"
