"""Issue 15: report, ensemble and export say in one line when the storage cannot be reached, and
a read-only command creates no database. A real (refused) PostgreSQL connection, real SQLite
paths."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from search.ensemble.cli import main as ensemble_main
from search.export import main as export_main
from search.report import main as report_main

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
