"""Workers on a real PostgreSQL server: sharing a study, heartbeats and retries, no password leaks."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.storage import open_storage
from tests.distributed.conftest import (
    REPO,
    PostgresServer,
    finished,
    open_study_view,
    retried_from,
    smoke_toml,
    trials,
    wait_for_running,
    worker_cmd,
    worker_env,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_two_workers_share_a_postgres_study_and_never_print_its_password(
    pg_url: str, postgres: PostgresServer, bench: Path, tmp_path: Path
) -> None:
    # A diverging trial queued first: whichever worker draws it must record the failure and go on.
    study = optuna.create_study(study_name="smoke", storage=open_storage(pg_url), direction="maximize")
    study.enqueue_trial({"lr": 1e6})
    cmd = worker_cmd("smoke", pg_url, bench, tmp_path / "runs", "--n-trials", "6")
    procs = [
        subprocess.Popen(
            cmd,
            cwd=REPO,
            env=worker_env(threads=1),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert postgres.password not in out and postgres.password not in err
        assert "Traceback" not in err
    assert any(f"//{postgres.user}@{postgres.host}" in out for out, _ in outputs), "the summary shows the redacted URL"

    study = open_study_view(pg_url, "smoke")
    done = finished(study)
    assert len(done) == 6
    assert not trials(study, TrialState.RUNNING) and not trials(study, TrialState.WAITING)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert len({t.user_attrs["worker"] for t in done}) == 2, "both workers ran trials"
    # (a trial started past the budget by a racing worker also ends FAIL, with its own reason)
    (diverged,) = [t for t in trials(study, TrialState.FAIL) if t.params.get("lr") == 1e6]
    assert "nan" in diverged.user_attrs["failure_reason"].lower()
    assert study.user_attrs["split"], "the first worker stored the person split for the others"


def test_a_storage_error_does_not_print_the_password(
    postgres: PostgresServer, bench: Path, tmp_path: Path
) -> None:
    url = postgres.url("no_such_database")
    done = subprocess.run(
        worker_cmd("smoke", url, bench, tmp_path / "runs"),
        cwd=REPO,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"cannot use the storage postgresql://{postgres.user}@" in done.stderr
    assert '"no_such_database" does not exist' in done.stderr and "Traceback" not in done.stderr
    assert postgres.password not in done.stdout + done.stderr


def test_a_killed_worker_costs_only_its_trial(pg_url: str, bench: Path, tmp_path: Path) -> None:
    study_file = smoke_toml(tmp_path, epochs=6)  # long enough trials to kill one midway
    cmd = worker_cmd(
        study_file, pg_url, bench, tmp_path / "runs", "--n-trials", "2", "--heartbeat", "1", "--grace", "3"
    )
    victim = subprocess.Popen(
        cmd, cwd=REPO, env=worker_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    (running,) = wait_for_running(pg_url, "study", victim, epochs_done=1)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    killed_at = time.time()
    assert open_study_view(pg_url, "study").trials[running.number].state == TrialState.RUNNING

    survivor = subprocess.run(cmd, cwd=REPO, env=worker_env(), capture_output=True, text=True, timeout=240)
    assert survivor.returncode == 0, survivor.stderr[-3000:]

    study = open_study_view(pg_url, "study")
    killed = study.trials[running.number]
    assert killed.state == TrialState.FAIL
    assert killed.datetime_complete is not None
    # Failed by the next worker's stale-trial check, not before the grace period (3 s) after
    # its last heartbeat (at most 1 s before the kill) had run out; then retried.
    silent_for = killed.datetime_complete.timestamp() - killed_at
    assert 3 - 1 - 0.5 <= silent_for < 60
    (retry,) = [t for t in study.trials if retried_from(t) == killed.number]
    assert retry.params == killed.params
    assert retry.datetime_start is not None and retry.datetime_start >= killed.datetime_complete
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.user_attrs["worker"] != running.user_attrs["worker"]
    assert len(finished(study)) == 2
    assert not trials(study, TrialState.RUNNING)
