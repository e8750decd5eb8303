"""Opening a study that exists: never creates one, and says in one line what is wrong."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search.storage.studies import open_stored_study


def test_opens_a_stored_study_and_names_the_others_when_the_name_is_wrong(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="kept", storage=url)
    assert open_stored_study("kept", url).study_name == "kept"
    with pytest.raises(ValueError, match=r"no study 'other' in .*studies there: \['kept'\]"):
        open_stored_study("other", url)


def test_a_missing_storage_file_is_refused_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "absent.db"
    with pytest.raises(ValueError, match="does not exist"):
        open_stored_study("any", f"sqlite:///{db}")
    assert not db.exists()
