"""Trials whose worker process died: failed and queued once more, on every storage."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.storage.reaper import reap_orphans, worker_tag
from search.storage.trial_attrs import TrialAttrs
from search.storage.backends import StorageSettings, open_storage
from tests.support.workers import retried_from


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
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
        TrialAttrs.set(trial, worker=tag)
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
    TrialAttrs.set(dead, worker=f"{socket.gethostname()}:{_dead_pid()}")
    TrialAttrs.set(remote, worker="another-host:1")
    assert reap_orphans(study) == [dead.number], "a provably dead local worker does not wait for the grace period"
    assert study.trials[remote.number].state == TrialState.RUNNING
