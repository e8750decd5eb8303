"""``python -m search.worker``: its flags, and what it refuses.

Workers on a real PostgreSQL server: sharing a study, heartbeats and retries, no password leaks.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.engine.options import RunOptions
from search.run import build_parser, options_from_args
from search.storage.backends import StorageSettings, open_storage
from search.worker import default_worker_index, main, build_parser
from tests.support.workers import (
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


def test_worker_takes_the_run_flags_plus_its_index() -> None:
    args = build_parser().parse_args(
        [
            "--study",
            "full",
            "--storage",
            "postgresql://u@h/db",
            "--workers",
            "4",
            "--heartbeat",
            "10",
            "--grace",
            "60",
            "--worker-index",
            "7",
        ]
    )
    opts = options_from_args(args)
    assert (opts.study, opts.storage, opts.worker_index) == ("full", "postgresql://u@h/db", 7)
    assert opts.storage_settings() == StorageSettings(heartbeat_interval_s=10, grace_period_s=60, max_retry=1)
    assert args.workers == 4


def test_worker_indices_differ_from_the_creating_run() -> None:
    assert 1 <= default_worker_index() <= 1_000_000


def test_worker_needs_a_storage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--study", "smoke"])
    assert info.value.code == 2
    assert "--storage is required" in capsys.readouterr().err


def test_worker_refuses_plain_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--study", "smoke", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--workdir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "plain SQLite" in err and "journal://" in err and "postgresql://" in err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("heartbeat", "grace", "message"),
    [
        (0, None, "--heartbeat must be"),
        (None, 0, "--grace must be"),
        (10, 10, "must be longer than --heartbeat"),
    ],
)
def test_heartbeat_settings_are_checked(heartbeat: int | None, grace: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunOptions(study="smoke", heartbeat_s=heartbeat, grace_s=grace)


def test_heartbeat_flags_reach_the_storage(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--study", "smoke", "--heartbeat", "2", "--grace", "5"])
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", options_from_args(args).storage_settings())
    assert storage.get_heartbeat_interval() == 2
    assert storage.grace_period == 5
    default = RunOptions(study="smoke").storage_settings()
    assert (default.heartbeat_interval_s, default.grace_period_s) == (30, 120)
    assert RunOptions(study="smoke", heartbeat_s=60).storage_settings().grace_period_s == 240


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
    study_file = smoke_toml(tmp_path, epochs=20, prune=False)  # long enough to kill one midway
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
