"""The local launcher's pieces: device plans and storage checks.

Local workers (``--workers N``) on the run's SQLite file or a journal file: one study shared,
nothing duplicated or lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search.engine.launcher import (
    default_journal_url,
    failed_workers,
    plan_workers,
    run_local_workers,
    visible_gpus,
)
from search.engine.options import RunOptions, plan_run
from tests.support.workers import (
    REPO,
    finished,
    open_study_view,
    retried_from,
    smoke_toml,
    study_cmd,
    trials,
    wait_for_running,
    worker_env,
)


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


def test_given_threads_replace_the_core_split() -> None:
    slots = plan_workers(2, "cpu", cpus=8, gpus=[], threads=3)
    assert [s.threads for s in slots] == [3, 3] and slots[0].env["OMP_NUM_THREADS"] == "3"


def test_default_journal_is_an_absolute_file_under_the_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = default_journal_url(Path("runs"), "age_cutoff")
    assert url == f"journal://{tmp_path.resolve()}/runs/age_cutoff.journal"


pytestmark = pytest.mark.slow


def test_two_local_workers_share_the_study_stop_on_sigterm_and_resume(bench: Path, tmp_path: Path) -> None:
    # Unpruned 20-epoch trials, so both workers are still inside one when the signal lands: the
    # smoke study's four 3-epoch trials can all end within a second of the check below.
    study_file = smoke_toml(tmp_path, epochs=20, prune=False)
    workdir = tmp_path / "runs"
    url = f"sqlite:///{workdir / 'studies.db'}"  # the run's storage, whatever the number of processes
    proc = subprocess.Popen(
        study_cmd("search.run", study_file, bench, workdir, "--workers", "2", "--n-trials", "4"),
        cwd=REPO,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_running(url, "study", proc, count=2)  # both workers are inside a trial
    signalled = datetime.now()  # Optuna's trial times are naive local times too
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "resume" in err
    study = open_study_view(url, "study")
    interrupted = trials(study, TrialState.FAIL)
    # A short smoke trial may end between the check above and the signal (its worker then stops
    # between trials): every trial still unfinished at the signal is the one marked failed.
    unfinished = [t for t in study.trials if t.datetime_complete is None or t.datetime_complete >= signalled]
    assert interrupted and all(t.state == TrialState.FAIL for t in unfinished), [t.state for t in unfinished]
    assert not trials(study, TrialState.RUNNING)
    caches = list((workdir / "cache").glob("*.npy"))
    assert len(caches) == 1, "one decoded-image cache, built by the launcher before the workers started"
    built = caches[0].stat().st_mtime
    before_resume = {t.number for t in study.trials}  # a trial may have finished before the signal

    code = run_local_workers(
        plan_run(RunOptions(study=str(study_file), data=bench, workdir=workdir, device="cpu", n_trials=4), workers=2)
    )
    assert code == 0
    study = open_study_view(url, "study")
    done = finished(study)
    assert len(done) == 4, "the budget counts finished trials over both workers, exactly"
    assert not trials(study, TrialState.RUNNING) and not trials(study, TrialState.WAITING)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(len(numbers)))
    tags = {t.user_attrs["worker"] for t in done if t.number not in before_resume}
    assert len(tags) == 2 and all(not tag.endswith(f":{os.getpid()}") for tag in tags), (
        "both children ran trials"
    )
    assert list((workdir / "cache").glob("*.npy")) == caches and caches[0].stat().st_mtime == built
    assert all(t.datetime_start.timestamp() > built for t in study.trials)


def test_a_killed_local_worker_loses_only_its_trial(bench: Path, tmp_path: Path) -> None:
    # Unpruned 20-epoch trials: long enough to be killed midway on a fast machine too, where a
    # smoke study's four trials can all end within a second.
    study_file = smoke_toml(tmp_path, epochs=20, prune=False)
    workdir = tmp_path / "runs"
    url = default_journal_url(workdir, "study")
    proc = subprocess.Popen(
        study_cmd("search.run", study_file, bench, workdir, "--workers", "2", "--n-trials", "4", "--storage", url),
        cwd=REPO,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (victim, *_) = wait_for_running(url, "study", proc, epochs_done=1)
    pid = int(victim.user_attrs["worker"].rpartition(":")[2])
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, "the launcher reports the dead worker"
    assert f"killed by signal {signal.SIGKILL.value}" in err

    study = open_study_view(url, "study")
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["failure_reason"]
    (retry,) = [t for t in study.trials if retried_from(t) == victim.number]
    assert retry.params == killed.params
    assert "died" not in str(retry.user_attrs.get("failure_reason")), "the retry does not inherit the reason"
    assert len(finished(study)) == 4
    assert not trials(study, TrialState.RUNNING)
    if retry.state == TrialState.WAITING:
        # the surviving worker met the budget with the trial it was running when the other died:
        # the retry waits for the next run, which takes it first
        again = study_cmd("search.run", study_file, bench, workdir, "--n-trials", "5", "--storage", url)
        done = subprocess.run(again, cwd=REPO, env=worker_env(), capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-2000:]
        retry = open_study_view(url, "study").trials[retry.number]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED), "the retry ran, with the same parameters"


def test_a_worker_that_dies_of_a_forwarded_stop_is_interrupted_not_failed() -> None:
    # CI saw it: SIGTERM reached a worker whose study was done while Python was shutting it down,
    # and the run exited 1 ("worker 0 was killed by signal 2") instead of 130.
    codes = {0: -int(signal.SIGINT), 1: 130, 2: 0}
    assert failed_workers(codes, forwarded=[int(signal.SIGTERM)]) == {}
    assert failed_workers(codes, forwarded=[]) == {0: -int(signal.SIGINT)}, "unasked, it is a failure"
    assert failed_workers({0: 1, 1: -9}, forwarded=[int(signal.SIGTERM)]) == {0: 1, 1: -9}
