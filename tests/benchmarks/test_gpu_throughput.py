"""benchmarks/gpu_throughput.py without CUDA: it runs on the CPU, says so and saves it."""

from __future__ import annotations

from pathlib import Path

from benchmarks import gpu_throughput
from tests.benchmarks.conftest import saved_result


def test_gpu_throughput_says_it_ran_on_cpu(tmp_path: Path) -> None:
    out = gpu_throughput.main(["--models", "test_resnet", "--height", "32", "--width", "24", "--steps", "2",
                               "--device", "cpu", "--results-dir", str(tmp_path / "results"), "--threads", "1"])
    saved = saved_result(tmp_path, "gpu_throughput")
    assert out["cpu_fallback"] and saved["figures"]["cpu_fallback"]
    assert saved["machine"]["torch_threads"] == 1 and saved["inputs"]["threads"] == 1
    assert saved["inputs"]["ema_decay"] == 0.999  # the runner side trains as the study files do
    assert saved["notes"][0].startswith("NO GPU")
    row = saved["figures"]["rows"][0]
    assert row["runner_images_per_s"] > 0 and row["bare_images_per_s"] > 0 and not row["goal_met"]
    assert 0.0 <= row["data_wait_share"] < 1.0
    from runners.batches import device_batches

    assert gpu_throughput.runner_fit.device_batches is device_batches  # the wrapper was taken off again
