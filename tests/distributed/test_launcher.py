"""The local launcher's pieces: device plans and storage checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.launcher import default_journal_url, plan_workers, run_local_workers, visible_gpus
from search.options import RunOptions


def test_cpu_workers_split_the_cores() -> None:
    slots = plan_workers(2, "auto", cpus=2, gpus=[])
    assert [s.device for s in slots] == ["cpu", "cpu"]
    assert all(s.threads == 1 and s.env["OMP_NUM_THREADS"] == "1" for s in slots)
    assert all("CUDA_VISIBLE_DEVICES" not in s.env for s in slots)
    assert [s.index for s in slots] == [0, 1]
    assert plan_workers(3, "cpu", cpus=16, gpus=["0", "1"])[0].device == "cpu", "--device cpu ignores GPUs"


def test_one_gpu_per_worker_round_robin() -> None:
    slots = plan_workers(3, "auto", cpus=12, gpus=["2", "3"])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["2", "3", "2"]
    assert all(s.device == "cuda" and s.threads == 4 for s in slots)
    pinned = plan_workers(2, "cuda:1", cpus=4, gpus=["2", "3"])
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in pinned] == ["3", "3"]


@pytest.mark.parametrize(
    ("n", "device", "gpus", "message"),
    [
        (0, "auto", [], "--workers must be at least 1"),
        (2, "cuda", [], "no CUDA GPU is visible"),
        (2, "cuda:2", ["0", "1"], "cuda:2 does not exist"),
        (2, "mps", ["0"], "must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_impossible_plans_are_refused(n: int, device: str, gpus: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_workers(n, device, cpus=2, gpus=gpus)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert visible_gpus() == ["5", "7"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ["0", "1"]


def test_plain_sqlite_is_refused_before_anything_starts(bench: Path, tmp_path: Path) -> None:
    opts = RunOptions(
        study="smoke", data=bench, workdir=tmp_path, storage=f"sqlite:///{tmp_path / 's.db'}", device="cpu"
    )
    with pytest.raises(ValueError, match="plain SQLite") as info:
        run_local_workers(opts, 2)
    assert default_journal_url(tmp_path, "smoke") in str(info.value) and "postgresql://" in str(info.value)
    assert list(tmp_path.iterdir()) == [], "nothing was created"


def test_default_journal_is_an_absolute_file_under_the_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = default_journal_url(Path("runs"), "age_cutoff")
    assert url == f"journal://{tmp_path.resolve()}/runs/age_cutoff.journal"
