"""Where a study lives: the Optuna storage a URL opens, its artifact store and the work folder.

Without ``--storage`` a study lives in ``sqlite:///<workdir>/studies.db``. The forms a URL may
take (SQLite, journal file, PostgreSQL, gRPC proxy) are the registry search.storage.forms; this
module opens any of them and answers what the verbs ask of a URL.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.artifacts import FileSystemArtifactStore

from search.common.optuna_compat import no_experimental_warnings
from search.storage.forms import RetryCallback, StorageSettings, check_storage_url, form_for
from search.storage.secretfilter import scrub
from search.storage.urls import redact, url_secrets

__all__ = [  # StorageSettings, RetryCallback and no_experimental_warnings are used from here
    "DEFAULT_WORKDIR", "STORAGE_ERRORS", "RetryCallback", "StorageSettings", "artifact_store",
    "check_storage_url",
    "dashboard_command", "default_storage_url", "no_experimental_warnings", "open_storage", "redact",
    "resolve_storage",
    "storage_error", "storage_file", "takes_concurrent_writers",
]

DEFAULT_WORKDIR = Path("runs")


def default_storage_url(workdir: Path) -> str:
    return f"sqlite:///{(workdir / 'studies.db').as_posix()}"


def resolve_storage(storage: str | None, workdir: Path | str | None) -> str:
    """``storage`` (--storage), else the SQLite file in ``workdir`` (--workdir, else runs/)."""
    return storage or default_storage_url(Path(workdir) if workdir is not None else DEFAULT_WORKDIR)


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
    form = form_for(url)
    assert form is not None  # check_storage_url refused any URL that is no form's
    return form.open(url, settings)


def takes_concurrent_writers(url: str) -> bool:
    form = form_for(url)
    return form is not None and form.concurrent


def storage_file(url: str) -> Path | None:
    """The file ``url``'s storage lives in (SQLite, journal), or None (a server)."""
    form = form_for(url)
    return form.file(url) if form is not None else None


def artifact_store(workdir: Path) -> FileSystemArtifactStore:
    path = workdir / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def dashboard_command(url: str, workdir: Path) -> str:
    form = form_for(url)
    target = form.dashboard_target(url) if form is not None else url
    shown = redact(target) if "://" in target else target  # a journal's target is a plain path
    artifacts = (workdir / "artifacts").as_posix()
    return (f"optuna-dashboard {shlex.quote(shown)} --artifact-dir {shlex.quote(artifacts)} "
            "--host 127.0.0.1")
