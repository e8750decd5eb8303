"""Storage passwords stay out of logs, warnings, tracebacks and printed commands."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.storage.secretfilter import hide_secrets
from search.storage.backends import dashboard_command, redact, url_secrets
from search.storage.forms._postgresql import with_driver

URL = "postgresql://automl:s3cr%40t-pw@db.example:5432/studies"


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    yield
    logging.captureWarnings(False)


def test_the_password_is_found_as_written_and_decoded() -> None:
    assert url_secrets(URL) == ["s3cr%40t-pw", "s3cr@t-pw"]
    assert url_secrets("postgresql://automl@db/studies") == []
    assert url_secrets("journal:///runs/x.journal") == []
    assert redact(URL) == "postgresql://automl@db.example:5432/studies"


def test_logs_warnings_and_tracebacks_are_scrubbed(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.security")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logging.getLogger().addHandler(handler)
    try:
        hide_secrets(URL)
        logger.error("cannot connect to %s", URL)
        try:
            raise RuntimeError(f"driver said: password s3cr@t-pw rejected for {URL}")
        except RuntimeError:
            logger.exception("storage failed")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"engine {URL} is slow", UserWarning, stacklevel=1)
        try:
            raise ValueError(f"Could not parse SQLAlchemy URL from string '{URL}'")
        except ValueError:
            sys.excepthook(*sys.exc_info())
    finally:
        logger.removeHandler(handler)
        logging.getLogger().removeHandler(handler)
    logged = stream.getvalue()
    printed = capsys.readouterr().err
    assert "cannot connect to postgresql://automl@db.example" in logged
    assert "RuntimeError" in logged and "engine postgresql://automl@db.example" in logged
    assert "Could not parse" in printed
    for secret in url_secrets(URL):
        assert secret not in logged and secret not in printed


def test_dashboard_command_binds_loopback_and_hides_the_password(tmp_path: Path) -> None:
    command = dashboard_command(URL, tmp_path)
    assert command.endswith("--host 127.0.0.1")
    assert "s3cr" not in command and "automl@db.example:5432/studies" in command
    assert command.split()[1].startswith("postgresql+psycopg"), (
        "the driver is named, so the URL works as printed"
    )
    journal = dashboard_command(f"journal://{tmp_path}/smoke.journal", tmp_path)
    assert journal.startswith(f"optuna-dashboard {tmp_path}/smoke.journal ") and "--host 127.0.0.1" in journal


def test_postgresql_urls_name_an_installed_driver() -> None:
    import importlib.util

    driver = with_driver("postgresql://u@h/db")
    name = driver.split("://")[0].removeprefix("postgresql+")
    assert importlib.util.find_spec(name) is not None
    assert with_driver("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert with_driver("sqlite:///x.db") == "sqlite:///x.db"


def test_a_url_followed_by_punctuation_is_printed_whole() -> None:
    from search.storage.secretfilter import scrub

    text = "cannot use the storage postgresql://automl@db:5432/studies: database does not exist."
    assert scrub(text, ["s3cr@t-pw"]) == text
    assert scrub(f"at {URL}, then {URL}.", []) == (
        "at postgresql://automl@db.example:5432/studies, then postgresql://automl@db.example:5432/studies."
    )
