"""Each benchmark script runs end to end on a tiny bench and saves what it printed (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from benchmarks import data_path, ensemble, gpu_throughput
from search.data import load_image, load_train


def _saved(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "results" / f"{name}.json").read_text())


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
    saved = _saved(tmp_path, "data_path")
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


@pytest.mark.slow
def test_ensemble_reports_every_method_with_eval_labels(bench_args: list[str], tmp_path: Path) -> None:
    out = ensemble.main(bench_args + ["--trials", "3", "--epochs", "1", "--backbones", "test_resnet,test_efficientnet",
                                      "--workdir", str(tmp_path / "ens"), "--device", "cpu"])
    methods = [c["method"] for c in out["final"]]
    assert methods == ["best single", "top-3 soft vote", "top-5 soft vote", "selected ensemble",
                       "selected + decision rule"]
    assert set(out["eval_labels"]) == set(methods)
    assert all(0.0 <= v["macro_f1"] <= 1.0 for v in out["eval_labels"].values())
    assert _saved(tmp_path, "ensemble")["inputs"]["study"].startswith("ensemble_")


def test_gpu_throughput_says_it_ran_on_cpu(tmp_path: Path) -> None:
    out = gpu_throughput.main(["--models", "test_resnet", "--height", "32", "--width", "24", "--steps", "2",
                               "--device", "cpu", "--results-dir", str(tmp_path / "results"), "--threads", "1"])
    saved = _saved(tmp_path, "gpu_throughput")
    assert out["cpu_fallback"] and saved["figures"]["cpu_fallback"]
    assert saved["machine"]["torch_threads"] == 1 and saved["inputs"]["threads"] == 1
    assert saved["inputs"]["ema_decay"] == 0.999  # the runner side trains as the study files do
    assert saved["notes"][0].startswith("NO GPU")
    row = saved["figures"]["rows"][0]
    assert row["runner_images_per_s"] > 0 and row["bare_images_per_s"] > 0 and not row["goal_met"]
    assert 0.0 <= row["data_wait_share"] < 1.0
    from runners.batches import device_batches

    assert gpu_throughput.runner_fit.device_batches is device_batches  # the wrapper was taken off again


@pytest.mark.slow
def test_realfaces_runs_both_sides_and_scores_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import common, realfaces
    from tests.realfaces.test_realfaces import AGES, _draw_face

    faces = tmp_path / "faces"
    faces.mkdir()
    for copy in range(3):
        for gender, ages in AGES.items():
            for i, age in enumerate(ages):
                _draw_face(faces / f"{age}_{gender}_{i % 5}_2017{copy}0{i % 10}12345678{i}.jpg.chip.jpg", age, gender)
    monkeypatch.setattr(common, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(realfaces, "WORK", tmp_path / "runs")
    out = realfaces.main(["--faces", str(faces), "--seeds", "1", "--people", "40", "--eval-people", "12",
                          "--size", "96x128", "--plain-epochs", "1", "--budget-factor", "6", "--study", "smoke",
                          "--threads", "1", "--results-dir", str(tmp_path / "results")])
    (run,) = out["runs"]
    for side in ("plain", "harness"):
        assert 0.0 <= run[side]["scores"]["macro_f1"] <= 1.0 and 0.0 <= run[side]["scores"]["old_f1"] <= 1.0
    harness = run["harness"]
    assert set(harness["seconds"]) == {"run", "ensemble", "export", "predict"}
    assert harness["trials"]["complete"] >= 1 and 0.0 <= harness["honest_estimate"] <= 1.0
    assert _saved(tmp_path, "realfaces")["figures"]["runs"][0]["seed"] == 1
