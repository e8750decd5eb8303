"""Where a study lives: the Optuna storage URL, its artifact store and the work folder.

    (none)                         sqlite:///<workdir>/studies.db   one process at a time
    sqlite:///path.db              plain SQLite
    journal:///path/to/study.log   Optuna's journal file: several local processes at once
    postgresql://user:pw@host/db   many machines; heartbeats fail a dead worker's trial

RDB storages (SQLite, PostgreSQL) get a heartbeat, so a trial whose worker died is marked
FAIL after ``grace_period`` seconds and re-queued once with the same parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend

DEFAULT_WORKDIR = Path("runs")
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]+:)(?P<pw>[^@]*)(?P<tail>@)")


@dataclass(frozen=True)
class StorageSettings:
    heartbeat_interval_s: int = 30
    grace_period_s: int = 120
    max_retry: int = 1  # a killed worker's trial is tried once more with the same parameters


def default_storage_url(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'studies.db').as_posix()}"


def redact(url: str) -> str:
    """The URL with any password replaced, safe to print or log."""
    return _PASSWORD.sub(r"\g<head>***\g<tail>", url)


def open_storage(url: str, settings: StorageSettings = StorageSettings()) -> optuna.storages.BaseStorage:
    if url.startswith("journal://"):
        path = Path(url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if "://" not in url:
        raise ValueError(
            f"Storage {redact(url)!r} is not a URL: use sqlite:///path.db, journal:///path.log "
            "or postgresql://user:password@host/db."
        )
    engine_kwargs = {"pool_pre_ping": True} if url.startswith("postgresql") else None
    return RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=settings.heartbeat_interval_s,
        grace_period=settings.grace_period_s,
        failed_trial_callback=RetryFailedTrialCallback(max_retry=settings.max_retry),
    )


def takes_concurrent_writers(url: str) -> bool:
    return not url.startswith("sqlite:")


def artifact_store(workdir: Path) -> FileSystemArtifactStore:
    path = workdir / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def dashboard_command(url: str, workdir: Path) -> str:
    target = url.removeprefix("journal://") if url.startswith("journal://") else url
    return f"optuna-dashboard {redact(target)} --artifact-dir {(workdir / 'artifacts').as_posix()} --host 127.0.0.1"
