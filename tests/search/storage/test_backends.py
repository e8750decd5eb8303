"""The real optuna-dashboard, over the storage the smoke study wrote, serves what users look at.

Issue 15: report, ensemble and export say in one line when the storage cannot be reached, and
a read-only command creates no database. A real (refused) PostgreSQL connection, real SQLite
paths.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search.ensemble import main as ensemble_main
from search.export import main as export_main
from search.report import main as report_main
from tests.search.conftest import SmokeRun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@contextmanager
def _dashboard(run: SmokeRun) -> Iterator[tuple[str, list[dict]]]:
    """A real optuna-dashboard over ``run``'s storage: (base URL, study summaries)."""
    port = _free_port()
    exe = Path(sys.executable).with_name("optuna-dashboard")
    proc = subprocess.Popen(
        [str(exe), run.storage, "--artifact-dir", str(run.workdir / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                studies = json.loads(_get(f"{base}/api/studies"))["study_summaries"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("dashboard did not start")
        yield base, studies
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_dashboard_shows_macro_f1_only_when_the_pruner_compares_losses(loss_run: SmokeRun) -> None:
    with _dashboard(loss_run) as (base, studies):
        (summary,) = studies
        trials = json.loads(_get(f"{base}/api/studies/{summary['study_id']}"))["trials"]
    pruned = [t for t in trials if t["state"] == "Pruned"]
    assert pruned and len(trials) == 6
    for trial in trials:  # one scale: every value and intermediate value is a macro-F1 in [0, 1]
        assert trial["values"] and all(0.0 <= v <= 1.0 for v in trial["values"]), trial["values"]
        steps = trial["intermediate_values"]
        assert steps and all(0.0 <= s["value"] <= 1.0 for s in steps), steps


def test_dashboard_serves_trials_notes_and_artifacts(smoke_run: SmokeRun) -> None:
    with _dashboard(smoke_run) as (base, studies):
        (summary,) = [s for s in studies if s["study_name"] == "smoke"]
        detail = json.loads(_get(f"{base}/api/studies/{summary['study_id']}"))
        trials = detail["trials"]
        assert len(trials) == len(smoke_run.study.trials)
        assert "# smoke" in detail["note"]["body"] and "macro-F1" in detail["note"]["body"]
        complete = [t for t in trials if t["state"] == TrialState.COMPLETE.name.capitalize()]
        pruned = [t for t in trials if t["state"] == TrialState.PRUNED.name.capitalize()]
        assert complete and pruned
        for trial in complete:
            assert trial["intermediate_values"]
            keys = {a["key"] for a in trial["user_attrs"]}
            assert {"config", "per_class_f1", "best_epoch", "seconds_per_epoch", "device"} <= keys
            names = {a["filename"]: a for a in trial["artifacts"]}
            assert set(names) == {"val_probs.npy", "confusion_matrix.png"}
            png = _get(f"{base}/artifacts/{summary['study_id']}/{trial['trial_id']}/"
                       f"{names['confusion_matrix.png']['artifact_id']}")
            assert png.startswith(b"\x89PNG")


UNREACHABLE = "postgresql://u@127.0.0.1:1/db"  # port 1: the connection is refused at once


def test_report_with_an_unreachable_storage_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = report_main(["--name", "tiny", "--storage", UNREACHABLE, "--workdir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line.startswith("error: cannot use the storage postgresql://u@127.0.0.1:1/db")
    assert "Check that the server runs" in line and "Traceback" not in err


@pytest.mark.parametrize("command", ["ensemble", "export"])
def test_ensemble_and_export_with_an_unreachable_storage_are_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, command: str
) -> None:
    argv = ["--name", "tiny", "--storage", UNREACHABLE]
    rc = ensemble_main(argv) if command == "ensemble" else export_main([*argv, "--out", str(tmp_path / "b")])
    assert rc == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    assert message.startswith("cannot use the storage postgresql://u@127.0.0.1:1/db") and "\n" not in message
    assert "Check that the server runs" in message and not error.exc_info
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("command", ["report", "ensemble", "export"])
def test_sqlite_storage_in_a_missing_folder_is_named_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, command: str
) -> None:
    db = tmp_path / "no" / "such" / "studies.db"
    argv = ["--name", "tiny", "--storage", f"sqlite:///{db}"]
    if command == "report":
        assert report_main([*argv, "--workdir", str(tmp_path)]) == 2
        message = capsys.readouterr().err
    else:
        main = ensemble_main if command == "ensemble" else export_main
        extra = ["--out", str(tmp_path / "b")] if command == "export" else []
        assert main([*argv, *extra]) == 2
        message = caplog.records[-1].getMessage()
    assert f"the storage file {db} does not exist" in message and "--storage" in message
    assert not (tmp_path / "no").exists()  # a read-only command creates no folder and no database


@pytest.mark.parametrize("command", ["ensemble", "export"])
def test_verbose_adds_the_traceback_to_the_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, command: str
) -> None:
    argv = ["--name", "tiny", "--storage", UNREACHABLE, "-v"]
    rc = ensemble_main(argv) if command == "ensemble" else export_main([*argv, "--out", str(tmp_path / "b")])
    assert rc == 2
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.getMessage().startswith("cannot use the storage") and error.exc_info


def test_the_default_storage_is_the_work_folders_sqlite_file(tmp_path: Path) -> None:
    from search.storage.backends import resolve_storage

    assert resolve_storage(None, tmp_path) == f"sqlite:///{(tmp_path / 'studies.db').as_posix()}"
    assert resolve_storage("journal:///x.journal", tmp_path) == "journal:///x.journal"


def test_an_sqlite_storage_waits_a_minute_for_another_processs_write(tmp_path: Path) -> None:
    """A run's local trial processes share its SQLite file: a busy database waits, not fails."""
    from search.storage.backends import open_storage, takes_concurrent_writers
    from search.storage.forms._sqlite import SQLITE_BUSY_TIMEOUT_S

    url = f"sqlite:///{(tmp_path / 'studies.db').as_posix()}"
    storage = open_storage(url)
    with storage.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_S * 1000 == 60_000
    assert not takes_concurrent_writers(url), "search.worker on another machine still refuses SQLite"


def test_a_postgresql_user_without_table_rights_is_told_so(
    pg_url: str, bench: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 23: a role that may log in but not use the tables got Optuna's guess, "exceeding max
    length", as a traceback; now one line with the database's reason, the fix and no password."""
    import secrets

    import sqlalchemy

    from search.engine.options import RunOptions
    from search.run import execute
    from search.storage.backends import open_storage
    from search.storage.forms._postgresql import with_driver

    open_storage(pg_url)  # the owner creates Optuna's tables
    password, role = "pw" + secrets.token_hex(8), "reader_" + secrets.token_hex(4)  # roles are server-wide
    engine = sqlalchemy.create_engine(with_driver(pg_url))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
    engine.dispose()
    owner = pg_url.split("//", 1)[1].split("@", 1)[0]
    url = pg_url.replace(owner, f"{role}:{password}")
    opts = RunOptions(study="smoke", data=bench, storage=url, workdir=tmp_path / "runs", device="cpu", n_trials=1)
    with caplog.at_level(logging.INFO):
        assert execute(opts) == 1
    (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    message = error.getMessage()
    assert "permission denied for table" in message and "GRANT ALL ON ALL TABLES" in message
    assert "max length" not in message and password not in message and "\n" not in message
    assert not error.exc_info
