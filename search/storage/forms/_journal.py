"""journal:///path/to/study.journal: Optuna's journal file, for several local processes at once."""

from __future__ import annotations

import re
from pathlib import Path

from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from search.storage.forms import FORMS, StorageForm, file_problem
from search.storage.forms._rdb import StorageSettings


def _open(url: str, settings: StorageSettings) -> JournalStorage:
    path = Path(url.removeprefix("journal://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def _file(url: str) -> Path | None:
    path = url.removeprefix("journal://")
    return Path(path) if path else None


FORMS.add("journal", StorageForm(
    name="journal",
    example="journal:///path/to/study.journal",
    schemes=re.compile("journal"),
    # journal:///absolute.journal, journal://relative.journal (as _open reads it)
    problem=lambda rest: file_problem(rest, "a journal"),
    open=_open,
    concurrent=True,
    file=_file,
    dashboard_target=lambda url: url.removeprefix("journal://"),
))
