"""sqlite:///path/to/studies.db: a file (the default storage), shared by the trial processes of one
machine: a run's local workers write to it in turn, each waiting up to ``SQLITE_BUSY_TIMEOUT_S`` for
another's write rather than failing. Workers on other machines (``search.worker``) need a journal
on a shared folder or PostgreSQL, so the form does not count as ``concurrent``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from search.common.locks import locked
from search.storage.forms import FORMS, StorageForm, file_problem
from search.storage.forms._rdb import StorageSettings, open_rdb
from search.storage.urls import file_path, is_password_key

SQLITE_BUSY_TIMEOUT_S = 60  # how long a process waits on another's SQLite write (Python's default: 5)


def _problem(rest: str) -> str | None:  # sqlite:///relative.db, sqlite:////absolute.db
    if not rest.startswith("/"):
        return "needs three slashes and a file path (sqlite:///path)"
    if any(is_password_key(item) for item in rest.partition("?")[2].split("&")):
        return "has a ?password=, but an SQLite file has none: leave it out"
    return file_problem(file_path("sqlite://" + rest)[1:], "an SQLite")


def _file(url: str) -> Path | None:
    path = file_path(url)[1:]  # without a ?query
    return None if path in ("", ":memory:") else Path(path)


@contextlib.contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """An exclusive ``flock`` on ``<db>.lock`` beside the file while the storage opens: two
    processes creating the same new file would both write its schema version, and one died
    with ``UNIQUE constraint failed: alembic_version``."""
    db = Path(file_path(url)[1:])  # without a ?query: the lock file's name shows no parameter
    db.parent.mkdir(parents=True, exist_ok=True)
    with locked(db.with_name(db.name + ".lock")):
        yield


def _open(url: str, settings: StorageSettings):  # type: ignore[no-untyped-def]
    # A run's local processes share the file: wait for a writer, don't fail.
    return open_rdb(url, settings, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}},
                    lock=_creation_lock(url))


FORMS.add("sqlite", StorageForm(
    name="sqlite",
    example="sqlite:///path/to/studies.db",
    schemes=re.compile("sqlite"),
    problem=_problem,
    open=_open,
    concurrent=False,  # one machine's processes only: search.worker refuses it
    file=_file,
))
