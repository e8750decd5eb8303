"""journal:///path/to/study.journal: Optuna's journal file, for several local processes at once."""

from __future__ import annotations

import re
from pathlib import Path

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from search.storage.forms import FORMS, StorageForm, file_problem
from search.storage.forms._rdb import StorageSettings
from search.storage.urls import file_path


def _problem(rest: str) -> str | None:
    """journal:///absolute.journal, journal://relative.journal (as _open reads it), no ?query."""
    if "?" in rest:
        return "has a ?query, but a journal is a plain file: leave it out"
    return file_problem(rest, "a journal")


def _open(url: str, settings: StorageSettings) -> JournalStorage:
    path = Path(file_path(url))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _file(url: str) -> Path | None:
    path = file_path(url)
    return Path(path) if path else None


FORMS.add("journal", StorageForm(
    name="journal",
    example="journal:///path/to/study.journal",
    schemes=re.compile("journal"),
    problem=_problem,
    open=_open,
    concurrent=True,
    file=_file,
    dashboard_target=file_path,  # a plain path, shown as it is
))
