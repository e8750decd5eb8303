"""The storage forms a study may live in: the registry ``FORMS``, one module per form.

    sqlite:///path/to/studies.db        the processes of one machine (the default, under the work folder)
    journal:///path/to/study.journal    Optuna's journal file: several local processes at once
    postgresql://user@host:port/db      many machines; heartbeats fail a dead worker's trial
    grpc://host:port                    Optuna's gRPC storage proxy in front of any of these

A form says which URLs are its own, what is wrong with one, how to open it, whether several
workers may write to it at once, and which file it lives in (a verb that only reads a study
refuses a file that does not exist rather than create it). A new form is one module here that
adds one ``StorageForm`` to ``FORMS`` (this package imports its modules), plus its test and a
line of docs/distributed.md; search.storage.backends and every verb take it from the registry.

A URL that reads two ways (search.storage.urls.split_url) is refused before any form sees it, naming
what to percent-encode and never the URL itself; a form's ``problem`` gets only one that reads one way.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from runners.registry import Registry
from search.storage.forms._rdb import RetryCallback, StorageSettings
from search.storage.urls import StorageUrlError, is_port, port_text, redact, split_url

__all__ = ["FORMS", "RetryCallback", "StorageForm", "StorageSettings", "check_storage_url", "form_for"]


@dataclass(frozen=True)
class StorageForm:
    name: str
    example: str  # the URL shape, for messages
    schemes: re.Pattern[str]  # the URL schemes that are this form's (matched whole, lower case)
    problem: Callable[[str], str | None]  # the part after "scheme://" -> why it cannot be used, or None
    open: Callable[[str, StorageSettings], optuna.storages.BaseStorage]
    concurrent: bool  # several workers, on several machines too, may write to it at once
    file: Callable[[str], Path | None] = lambda url: None  # the file the storage lives in, if one
    dashboard_target: Callable[[str], str] = lambda url: url  # what optuna-dashboard is given


FORMS: Registry[StorageForm] = Registry("storage form")


def form_for(url: str) -> StorageForm | None:
    parts = split_url(url)
    if isinstance(parts, str):  # reads two ways: no form's
        return None
    scheme = parts.scheme.lower()
    return next((FORMS.get(n) for n in FORMS if FORMS.get(n).schemes.fullmatch(scheme)), None)


def accepted() -> str:
    examples = [FORMS.get(n).example for n in FORMS]
    return ", ".join(examples[:-1]) + " or " + examples[-1]


def check_storage_url(url: str) -> None:
    """Raise StorageUrlError for a URL the harness cannot store a study in."""
    problem = _problem(url)
    if problem:
        raise StorageUrlError(f"storage {redact(url)!r} {problem}; use {accepted()}.")


def _problem(url: str) -> str | None:
    parts = split_url(url)
    if isinstance(parts, str):  # why it reads two ways, or is no URL: a fixed sentence, no user text
        return parts
    form = form_for(url)
    if form is None:
        return f"has the scheme {parts.scheme}://, which this harness does not use"
    return form.problem(url[len(parts.scheme) + 3:])


def file_problem(path: str, what: str) -> str | None:
    """Why ``path`` cannot hold ``what`` ("an SQLite", "a journal"), or None."""
    if what == "an SQLite" and (not path or path.startswith(":memory:")):
        return f"is an in-memory database: nothing would be saved; name {what} file"
    if not path or path == "/":
        return f"names no file; name {what} file"
    if Path(path).is_dir():
        return f"names the folder {path}; name {what} file inside it"
    return None


def port_problem(host: str) -> str | None:
    """Why the port of ``host`` (``name:port`` or ``[v6]:port``) is not a port, or None."""
    text = port_text(host)
    if text and not is_port(text):
        return f"has the port {text!r}; a port is a number from 1 to 65535"
    return None


# Every module of this package adds its form: the built-in ones in this order (the order of the
# accepted forms in messages), then any other by name.
for _module in dict.fromkeys(["_sqlite", "_journal", "_postgresql", *sorted(m.name for m in pkgutil.iter_modules(__path__))]):
    importlib.import_module(f"{__name__}.{_module}")
