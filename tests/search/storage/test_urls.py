"""Storage URLs: refused with one line naming them and the accepted forms; passwords never printed."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from search.engine.options import RunOptions
from search.run import main
from search.storage.secretfilter import scrub
from search.storage.backends import dashboard_command, open_storage, redact, url_secrets
from search.storage.forms import check_storage_url
from search.storage.urls import StorageUrlError

ACCEPTED = "sqlite:///path/to/studies.db, journal:///path/to/study.journal, postgresql://"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite:///", "in-memory database"),
        ("sqlite:///:memory:", "in-memory database"),
        ("mysql://automl:PW@db/automl", "scheme mysql://"),
        ("http://db.example/studies", "scheme http://"),
        ("postgresql://automl@db:54x2/automl", "port '54x2'"),
        ("postgresql://automl@db:70000/automl", "port '70000'"),
    ],
)
def test_unusable_storage_urls_are_refused_naming_the_accepted_forms(url: str, problem: str) -> None:
    with pytest.raises(StorageUrlError) as info:
        open_storage(url)
    message = str(info.value)
    assert problem in message and ACCEPTED in message and "\n" not in message
    assert "PW" not in message


def test_a_journal_url_naming_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageUrlError, match=f"names the folder {tmp_path}; name a journal file"):
        open_storage(f"journal://{tmp_path}")


@pytest.mark.parametrize(
    "storage", ["sqlite:///", "mysql://automl@db/automl", "postgresql://automl@db:port/automl"]
)
def test_search_run_refuses_a_bad_storage_in_one_line_before_anything_runs(
    tmp_path: Path, storage: str, caplog: pytest.LogCaptureFixture
) -> None:
    code = main(["--study", "smoke", "--storage", storage, "--workdir", str(tmp_path / "runs"), "--device", "cpu"])
    assert code == 2
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and ACCEPTED in errors[0].getMessage() and not errors[0].exc_info
    assert not (tmp_path / "runs").exists(), "nothing was read or written"


def test_a_workdir_that_is_a_file_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = tmp_path / "runs"
    file.write_text("not a folder")
    assert main(["--study", "smoke", "--workdir", str(file), "--device", "cpu"]) == 2
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "--workdir is a file, not a folder; pass a folder" in error.getMessage() and not error.exc_info


@pytest.mark.parametrize(
    ("url", "shown", "secrets"),
    [
        ("postgresql://automl:s3cr%40t@db:5432/studies", "postgresql://automl@db:5432/studies", ["s3cr%40t", "s3cr@t"]),
        ("postgresql://:Secret1@db/studies", "postgresql://db/studies", ["Secret1"]),
        ("postgresql://automl@db/studies?password=Secret1", "postgresql://automl@db/studies", ["Secret1"]),
        ("postgresql://automl@db/studies?sslmode=require&password=Secret%31&connect_timeout=5",
         "postgresql://automl@db/studies?sslmode=require&connect_timeout=5", ["Secret%31", "Secret1"]),
        ("postgresql://automl@db/studies?%70assword=Secret1", "postgresql://automl@db/studies", ["Secret1"]),
    ],
)
def test_every_libpq_password_form_is_left_out(url: str, shown: str, secrets: list[str]) -> None:
    assert redact(url) == shown
    assert url_secrets(url) == secrets
    assert "***" not in redact(url), "the printed URL still works, with the password from ~/.pgpass"
    for secret in secrets:
        assert secret not in scrub(f"could not connect to {url} (oops)", [])


def test_next_commands_are_quoted_and_work_without_the_password(tmp_path: Path) -> None:
    from search.engine.runstudy import next_commands

    workdir = tmp_path / "my runs"
    url = "postgresql://automl@db/studies?password=Secret1"
    opts = RunOptions(study="smoke", storage=url, workdir=workdir)
    lines = next_commands("my study", opts)
    text = "\n".join(lines)
    assert "Secret1" not in text and "***" not in text
    assert "~/.pgpass" in text and "PGPASSWORD" in text
    report = next(line for line in lines if "search.report" in line).split(":", 1)[1]
    assert shlex.split(report)[3:] == ["--name", "my study", "--storage", "postgresql://automl@db/studies",
                                       "--workdir", str(workdir)]
    export = next(line for line in lines if "search.export" in line)
    assert shlex.split(export.split(":", 1)[1])[-1] == "exports/my study"
    dashboard = shlex.split(dashboard_command(f"sqlite:///{workdir}/studies.db", workdir))
    assert dashboard[1] == f"sqlite:///{workdir}/studies.db" and dashboard[3] == f"{workdir}/artifacts"


def test_a_url_without_a_password_gets_no_note(tmp_path: Path) -> None:
    from search.engine.runstudy import next_commands

    lines = next_commands("smoke", RunOptions(study="smoke", storage=f"sqlite:///{tmp_path}/s.db", workdir=tmp_path))
    assert not any("PGPASSWORD" in line for line in lines)
    check_storage_url(f"sqlite:///{tmp_path}/s.db")  # accepted
