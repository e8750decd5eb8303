"""The local launcher's pieces: device plans, storage checks, cache sizes, orphaned trials."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.launcher import default_journal_url, plan_workers, run_local_workers, visible_gpus
from search.objective import TrialFailed
from search.options import RunOptions
from search.reaper import WORKER_ATTR, reap_orphans, worker_tag
from search.runstudy import worker_objective
from search.storage import StorageSettings, open_storage
from search.study import cache_sizes, load_study_spec
from spaces import Categorical, IntRange
from tests.distributed.conftest import retried_from


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


def test_cache_sizes_cover_every_resolution_a_trial_can_ask_for() -> None:
    spec = load_study_spec("smoke")
    assert cache_sizes(spec) == [(32, 24, "face")]
    two = dataclasses.replace(spec, params={**spec.params, "height": Categorical((32, 40))})
    assert cache_sizes(two) == [(32, 24, "face"), (40, 24, "face")]
    ranged = dataclasses.replace(spec, params={**spec.params, "height": IntRange(32, 64)})
    assert cache_sizes(ranged) == []


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(proc.stdout)


def test_orphaned_trials_are_failed_and_retried_once(tmp_path: Path) -> None:
    study = optuna.create_study(storage=open_storage(f"journal://{tmp_path / 'j.journal'}"), study_name="s")
    orphan, live, remote, untagged = (study.ask() for _ in range(4))
    for trial, tag in (
        (orphan, f"{socket.gethostname()}:{_dead_pid()}"),
        (live, worker_tag()),
        (remote, "another-host:1"),
    ):
        trial.suggest_float("x", 0, 1)
        trial.set_user_attr(WORKER_ATTR, tag)
    assert reap_orphans(study) == [orphan.number]
    states = {t.number: t.state for t in study.trials}
    assert states[orphan.number] == TrialState.FAIL
    assert {states[t.number] for t in (live, remote, untagged)} == {TrialState.RUNNING}
    assert "died" in study.trials[orphan.number].user_attrs["failure_reason"]
    (retry,) = [t for t in study.trials if retried_from(t) == orphan.number]
    assert retry.state == TrialState.WAITING and retry.params == study.trials[orphan.number].params
    assert reap_orphans(study) == [], "a reaped trial is not reaped (or retried) twice"


def test_heartbeat_storages_leave_only_other_machines_trials_to_optuna(tmp_path: Path) -> None:
    storage = open_storage(
        f"sqlite:///{tmp_path / 's.db'}", StorageSettings(heartbeat_interval_s=1, grace_period_s=2)
    )
    study = optuna.create_study(storage=storage, study_name="s")
    dead, remote = study.ask(), study.ask()
    dead.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{_dead_pid()}")
    remote.set_user_attr(WORKER_ATTR, "another-host:1")
    assert reap_orphans(study) == [dead.number], "a provably dead local worker does not wait for the grace period"
    assert study.trials[remote.number].state == TrialState.RUNNING


def test_trials_record_the_worker_that_ran_them() -> None:
    study = optuna.create_study()
    study.optimize(worker_objective(lambda trial: trial.suggest_float("x", 0, 1)), n_trials=2)
    assert {t.user_attrs[WORKER_ATTR] for t in study.trials} == {f"{socket.gethostname()}:{os.getpid()}"}


def test_a_trial_beyond_the_budget_is_not_run() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.ask()  # another worker's trial, still running
    ran: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        return 0.1

    study.optimize(worker_objective(objective, n_trials=3), n_trials=5, catch=(TrialFailed,))
    # 1 finished + 1 running leave room for one more; the next would make 4
    assert ran == [2]
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL]
    assert "budget of 3" in study.trials[3].user_attrs["failure_reason"]
