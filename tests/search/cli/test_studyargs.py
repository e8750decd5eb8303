"""search.cli.studyargs: --study is the study file in every verb, --name the stored study's name."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from search.cli.studyargs import StudyRef, add_study_args, storage_url, study_flags, study_ref


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_study_args(p)
    return p.parse_args(list(argv))


def test_the_stored_name_defaults_to_the_study_files_name(tmp_path: Path) -> None:
    ref = study_ref(parse("--study", "age_cutoff"))
    assert (
        ref.name == "age_cutoff" and ref.study_file is not None and ref.study_file.name == "age_cutoff.toml"
    )
    assert study_ref(parse("--study", "age_cutoff", "--name", "custom")).name == "custom"
    assert study_ref(parse("--name", "custom")) == StudyRef("custom", None)
    toml = tmp_path / "mine.toml"
    toml.write_text("")
    assert study_ref(parse("--study", str(toml))) == StudyRef("mine", toml)


def test_no_study_and_an_unknown_study_file_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"--study FILE .* or --name NAME"):
        study_ref(parse())
    with pytest.raises(ValueError, match=r"No study named 'custom'.*pass --name custom"):
        study_ref(parse("--study", "custom"))


def test_storage_defaults_to_the_work_folders_sqlite_file(tmp_path: Path) -> None:
    assert storage_url(parse("--name", "x", "--workdir", str(tmp_path))) == f"sqlite:///{tmp_path}/studies.db"
    assert storage_url(parse("--name", "x", "--storage", "sqlite:///other.db")) == "sqlite:///other.db"


def test_flags_name_a_stored_study_for_the_next_verb() -> None:
    assert study_flags("age_cutoff", "age_cutoff") == ["--study", "age_cutoff"]
    assert study_flags("age_cutoff", "studies/age_cutoff.toml") == ["--study", "studies/age_cutoff.toml"]
    assert study_flags("fixed", "age_cutoff") == ["--name", "fixed"]
    assert study_flags("fixed") == ["--name", "fixed"]
