"""Opening a study that already exists, for the verbs that only read one (report, ensemble,
export, refit, clean): nothing is created, and a wrong storage or name is one line."""

from __future__ import annotations

import optuna

from search.storage.backends import STORAGE_ERRORS, open_storage, redact, storage_error, storage_file


def open_stored_study(name: str, storage_url: str) -> optuna.Study:
    """An existing study, for the commands that only read one (report, ensemble, export).

    A storage that cannot be reached, or a study file that does not exist, is one ValueError
    line; nothing is created.
    """
    _require_storage_file(storage_url)
    try:
        storage = open_storage(storage_url)
        return optuna.load_study(study_name=name, storage=storage)
    except STORAGE_ERRORS as exc:
        raise ValueError(storage_error(storage_url, exc)) from exc
    except KeyError:
        names = sorted(
            s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        )
        raise ValueError(
            f"no study {name!r} in {redact(storage_url)}; studies there: {names or 'none'}. "
            "Pass --storage where the study lives, or run it first with python -m search.run."
        ) from None


def _require_storage_file(url: str) -> None:
    """A file storage (SQLite, journal) must exist already: opening one would create it empty."""
    path = storage_file(url)
    if path is not None and not path.exists():
        raise ValueError(
            f"the storage file {path} does not exist, so it holds no study; pass the --storage "
            "(or --workdir) the study was run with."
        )
