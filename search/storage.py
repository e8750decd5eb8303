"""Where a study lives: the Optuna storage URL, its artifact store and the work folder.

    (none)                         sqlite:///<workdir>/studies.db   the processes of one machine
    sqlite:///path.db              plain SQLite, shared by the local worker processes of a run
    journal:///path/to/study.log   Optuna's journal file: several local processes at once
    postgresql://user:pw@host/db   many machines; heartbeats fail a dead worker's trial

RDB storages (SQLite, PostgreSQL) get a heartbeat, so a trial whose worker died is marked
FAIL after ``grace_period`` seconds and re-queued once with the same parameters.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import shlex
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend

from search.secretfilter import scrub
from search.urls import check_storage_url, file_path, redact, url_secrets

DEFAULT_WORKDIR = Path("runs")
SQLITE_BUSY_TIMEOUT_S = 60  # how long a process waits on another's SQLite write (Python's default: 5)


@contextlib.contextmanager
def no_experimental_warnings() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the features this harness chose on purpose
    (heartbeats, their retry callback, TPE's ``group``); other warnings still show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


@dataclass(frozen=True)
class StorageSettings:
    heartbeat_interval_s: int = 30
    grace_period_s: int = 120
    max_retry: int = 1  # a killed worker's trial is tried once more with the same parameters


# Optuna 4.9 renamed the retry callback and its RDBStorage argument; the old names warn there.
RetryCallback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", RetryFailedTrialCallback)
_RETRY_ARG = ("heartbeat_stale_trial_callback" if RetryCallback is not RetryFailedTrialCallback
              else "failed_trial_callback")


def default_storage_url(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'studies.db').as_posix()}"


def with_driver(url: str) -> str:
    """``postgresql://`` with the PostgreSQL driver that is installed made explicit.

    SQLAlchemy 2.0 reads a bare ``postgresql://`` as psycopg2 and 2.1 as psycopg (3); naming
    the installed one makes the same URL work with either driver and either SQLAlchemy.
    """
    if not url.startswith("postgresql://"):
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return f"postgresql+{driver}://" + url.removeprefix("postgresql://")
    return url


STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


def storage_error(url: str, exc: Exception) -> str:
    """One line for a storage that cannot be reached (down, wrong host, database or password) or
    that refuses this user (no rights on its tables)."""
    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        exc = exc.__cause__  # Optuna's text guesses "exceeding max length"; the database's says why
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = lines[0] if lines else type(exc).__name__
    if "permission denied" in reason.lower():
        fix = ("The user lacks rights on the database's tables: run search.run as the database's owner, or "
               "have the owner GRANT ALL ON ALL TABLES IN SCHEMA public (and ON ALL SEQUENCES) TO that user.")
    else:
        fix = "Check that the server runs and that the host, port, database, user and password are right."
    return f"cannot use the storage {redact(url)}: {scrub(reason, url_secrets(url))}. {fix}"


def open_storage(url: str, settings: StorageSettings = StorageSettings()) -> optuna.storages.BaseStorage:
    check_storage_url(url)
    if url.startswith("journal://"):
        path = Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, object] | None = None
    if url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True}
    elif url.startswith("sqlite"):  # a run's local processes share the file: wait for a writer, don't fail
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    with _creation_lock(url), no_experimental_warnings():
        return RDBStorage(
            with_driver(url),
            engine_kwargs=engine_kwargs,
            heartbeat_interval=settings.heartbeat_interval_s,
            grace_period=settings.grace_period_s,
            **{_RETRY_ARG: RetryCallback(max_retry=settings.max_retry)},
        )


@contextlib.contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """For SQLite, an exclusive ``flock`` on ``<db>.lock`` beside the file while the storage opens:
    two processes creating the same new file would both write its schema version, and one died
    with ``UNIQUE constraint failed: alembic_version``. Other storages need no lock."""
    if not url.startswith("sqlite:///"):
        yield
        return
    db = Path(file_path(url)[1:])  # without a ?query: the lock file's name shows no parameter
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def takes_concurrent_writers(url: str) -> bool:
    return not url.startswith("sqlite:")


def artifact_store(workdir: Path) -> FileSystemArtifactStore:
    path = workdir / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def dashboard_command(url: str, workdir: Path) -> str:
    target = url.removeprefix("journal://") if url.startswith("journal://") else with_driver(url)
    artifacts = (workdir / "artifacts").as_posix()
    shown = target if url.startswith("journal://") else redact(target)  # a journal is a plain path
    return (f"optuna-dashboard {shlex.quote(shown)} --artifact-dir {shlex.quote(artifacts)} "
            "--host 127.0.0.1")
