"""Local workers (``--workers N``) on a journal file: one study shared, nothing duplicated or lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search.launcher import default_journal_url, run_local_workers
from search.options import RunOptions
from tests.distributed.conftest import (
    REPO,
    finished,
    open_study_view,
    retried_from,
    trials,
    wait_for_running,
    worker_env,
)

pytestmark = pytest.mark.slow


def _run_cmd(bench: Path, workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "search.run",
        "--study",
        "smoke",
        "--data",
        str(bench),
        "--workdir",
        str(workdir),
        "--device",
        "cpu",
        "--workers",
        "2",
        "--n-trials",
        "4",
        *extra,
    ]


def test_two_local_workers_share_the_study_stop_on_sigterm_and_resume(bench: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "runs"
    url = default_journal_url(workdir, "smoke")  # what --workers uses when no --storage is given
    proc = subprocess.Popen(
        _run_cmd(bench, workdir),
        cwd=REPO,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_running(url, "smoke", proc, count=2)  # both workers are inside a trial
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "resume" in err
    study = open_study_view(url, "smoke")
    interrupted = trials(study, TrialState.FAIL)
    assert len(interrupted) >= 2 and not trials(study, TrialState.RUNNING)
    caches = list((workdir / "cache").glob("*.npy"))
    assert len(caches) == 1, "one decoded-image cache, built by the launcher before the workers started"
    built = caches[0].stat().st_mtime
    before_resume = {t.number for t in study.trials}  # a trial may have finished before the signal

    code = run_local_workers(
        RunOptions(study="smoke", data=bench, workdir=workdir, device="cpu", n_trials=4), 2
    )
    assert code == 0
    study = open_study_view(url, "smoke")
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
    workdir = tmp_path / "runs"
    url = default_journal_url(workdir, "smoke")
    proc = subprocess.Popen(
        _run_cmd(bench, workdir),
        cwd=REPO,
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (victim, *_) = wait_for_running(url, "smoke", proc, epochs_done=1)
    pid = int(victim.user_attrs["worker"].rpartition(":")[2])
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, "the launcher reports the dead worker"
    assert f"killed by signal {signal.SIGKILL.value}" in err

    study = open_study_view(url, "smoke")
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["failure_reason"]
    (retry,) = [t for t in study.trials if retried_from(t) == victim.number]
    assert retry.params == killed.params
    assert "died" not in str(retry.user_attrs.get("failure_reason")), "the retry does not inherit the reason"
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED), "the surviving worker ran the retry"
    assert len(finished(study)) == 4
    assert not trials(study, TrialState.RUNNING)
