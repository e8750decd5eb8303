"""search/storage/study_attrs.py: a study's recorded attributes, written by one writer, read by one reader."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search.data import PersonSplit
from search.storage.study_attrs import StudyAttrs, StudyAttrsError

SPLIT = PersonSplit(("p1", "p2", "p3"), ("p4",), seed=0, method="holdout:0.25")


def _attrs(**changes: object) -> StudyAttrs:
    base: dict[str, object] = dict(
        data_fingerprint="f" * 64, split=SPLIT, data_root="/data", relabel=None, study_file="studies/smoke.toml",
        profile="gpu", workdir="/runs", description="a study", pruning_signal="val_loss", folds=3,
    )
    return StudyAttrs(**{**base, **changes})  # type: ignore[arg-type]


def test_what_the_writer_writes_the_reader_reads_back() -> None:
    study = optuna.create_study(study_name="s")
    _attrs().write(study)
    assert StudyAttrs.read(study) == _attrs() and StudyAttrs.find(study) == _attrs()
    # the stored keys are the ones studies made before this class hold (and folds), so those stay readable
    assert set(study.user_attrs) == {"data_fingerprint", "split", "data_root", "relabel", "study_file", "profile",
                                     "workdir", "description", "pruning_signal", "folds"}
    assert study.user_attrs["split"] == SPLIT.to_dict()


def test_the_fingerprint_is_written_last_so_its_presence_means_the_rest_is_there() -> None:
    class Recorder:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def set_user_attr(self, key: str, value: object) -> None:
            self.keys.append(key)

    recorder = Recorder()
    _attrs().write(recorder)  # type: ignore[arg-type]
    assert recorder.keys[-1] == "data_fingerprint" and len(recorder.keys) == len(set(recorder.keys)) == 10


def test_a_study_that_records_nothing_yet_is_found_as_none_and_read_as_a_clear_error() -> None:
    study = optuna.create_study(study_name="foreign")
    assert StudyAttrs.find(study) is None
    with pytest.raises(StudyAttrsError, match=r"study 'foreign' records no data_fingerprint and no split: "
                                              r"it was not created by python -m search.run"):
        StudyAttrs.read(study)


def test_a_study_from_before_the_optional_fields_reads_with_their_defaults() -> None:
    study = optuna.create_study(study_name="old")
    study.set_user_attr("split", SPLIT.to_dict())
    study.set_user_attr("data_fingerprint", "abc")
    attrs = StudyAttrs.read(study)
    assert (attrs.pruning_signal, attrs.profile, attrs.description, attrs.workdir) == ("macro_f1", "cpu", "", None)
    assert attrs.folds is None  # recorded before [split] folds was: search.refit falls back to its study file


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("split", {"train_people": []}, "its recorded split cannot be read"),
        ("data_fingerprint", 42, "records data_fingerprint = 42, where search.run writes a non-empty string"),
        ("workdir", ["/runs"], "records workdir = \\['/runs'\\], where search.run writes a path string or null"),
        ("pruning_signal", None, "records pruning_signal = None, where search.run writes a string"),
        ("folds", "3", "records folds = '3', where search.run writes a whole number >= 0 or null"),
    ],
)
def test_a_malformed_attribute_is_named(key: str, value: object, message: str) -> None:
    study = optuna.create_study(study_name="edited")
    _attrs().write(study)
    study.set_user_attr(key, value)
    with pytest.raises(StudyAttrsError, match=message):
        StudyAttrs.read(study)


def test_the_ensemble_refuses_a_study_this_harness_did_not_create(tmp_path: Path) -> None:
    from search.ensembling.candidates import load_candidates

    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="foreign", storage=storage)
    with pytest.raises(ValueError, match="study 'foreign' records no data_fingerprint"):
        load_candidates("foreign", storage, tmp_path)
