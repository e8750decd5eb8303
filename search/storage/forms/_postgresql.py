"""postgresql://user@host:port/db: many machines; the password in ~/.pgpass or PGPASSWORD."""

from __future__ import annotations

import importlib.util
import re

from search.storage.forms import FORMS, StorageForm, port_problem
from search.storage.forms._rdb import StorageSettings, open_rdb
from search.storage.urls import split_url


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


def _problem(rest: str) -> str | None:
    parts = split_url("postgresql://" + rest)
    return port_problem(parts.host) if not isinstance(parts, str) else parts


def _open(url: str, settings: StorageSettings):  # type: ignore[no-untyped-def]
    return open_rdb(with_driver(url), settings, engine_kwargs={"pool_pre_ping": True})


FORMS.add("postgresql", StorageForm(
    name="postgresql",
    example="postgresql://user@host:port/database (password in ~/.pgpass or PGPASSWORD)",
    schemes=re.compile(r"postgresql(\+[a-z0-9_]+)?"),
    problem=_problem,
    open=_open,
    concurrent=True,
    dashboard_target=with_driver,
))
