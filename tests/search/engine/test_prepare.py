"""search/engine/prepare.py: a study is created with its data's fingerprint and person split, and resumed on them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import optuna
import pytest

from search.engine.prepare import StudyData, StudyMismatchError, open_study, sampler_seed
from search.studyfile.parse import SplitSpec, StudySpec, load_study_spec
from search.storage.study_attrs import StudyAttrs
from search.storage.trialstore import TrialStore


@pytest.fixture
def spec() -> StudySpec:
    return load_study_spec("smoke")


def _open(spec: StudySpec, tmp_path: Path, data: Path) -> tuple[optuna.Study, StudyData]:
    return open_study(spec, f"sqlite:///{tmp_path / 'studies.db'}", tmp_path, data_root=data)


def test_a_new_study_records_its_data_and_split_and_saves_the_validation_rows(
    spec: StudySpec, tmp_path: Path, tiny_bench: Path
) -> None:
    study, sd = _open(spec, tmp_path, tiny_bench)
    attrs = StudyAttrs.read(study)
    assert attrs.data_fingerprint == sd.data.fingerprint and attrs.split == sd.split
    assert attrs.data_root == str(tiny_bench.resolve()) and attrs.workdir == str(tmp_path.resolve())
    assert (attrs.study_file, attrs.profile, attrs.pruning_signal) == (str(spec.path), "cpu", "macro_f1")
    assert attrs.description == spec.description and attrs.relabel is None
    assert attrs.folds == spec.split.folds == 0  # what search.refit --folds takes K from
    people = sd.data.images["person"].to_numpy().astype(str)
    assert set(people[sd.val_rows]) == set(sd.split.val_people)
    assert set(people[sd.train_rows]) == set(sd.split.train_people)
    saved = TrialStore(tmp_path, "smoke").load_validation()
    assert np.array_equal(saved.rows, sd.val_rows) and np.array_equal(saved.labels, sd.data.labels[sd.val_rows])
    assert saved.fingerprint == sd.data.fingerprint


def test_a_resumed_study_keeps_its_split_even_when_the_study_file_changes_it(
    spec: StudySpec, tmp_path: Path, tiny_bench: Path
) -> None:
    _, first = _open(spec, tmp_path, tiny_bench)
    reseeded = dataclasses.replace(spec, split=SplitSpec(val_fraction=0.5, seed=7, folds=4))
    study, again = _open(reseeded, tmp_path, tiny_bench)
    assert again.split == first.split and np.array_equal(again.val_rows, first.val_rows)
    assert StudyAttrs.read(study).split == first.split and StudyAttrs.read(study).folds == 0


def test_a_study_is_not_resumed_on_other_data(spec: StudySpec, tmp_path: Path, tiny_bench: Path) -> None:
    study, _ = _open(spec, tmp_path, tiny_bench)
    study.set_user_attr("data_fingerprint", "0" * 64)  # as if created on other data
    with pytest.raises(StudyMismatchError, match=r"was created on data .* \(fingerprint 000000000000\).*--name"):
        _open(spec, tmp_path, tiny_bench)


def test_a_study_is_not_resumed_with_another_pruning_signal(
    spec: StudySpec, tmp_path: Path, tiny_bench: Path
) -> None:
    _open(spec, tmp_path, tiny_bench)
    on_loss = dataclasses.replace(spec, pruner=dataclasses.replace(spec.pruner, signal="val_loss"))
    with pytest.raises(StudyMismatchError, match="reported macro_f1 to its pruner.*signal = 'macro_f1'"):
        _open(on_loss, tmp_path, tiny_bench)


def test_the_image_cache_is_built_once_per_size_and_crop(spec: StudySpec, tmp_path: Path, tiny_bench: Path) -> None:
    _, sd = _open(spec, tmp_path, tiny_bench)
    images = sd.images(32, 24, "face")
    assert images.shape == (len(sd.data.images), 32, 24, 3) and images.dtype == np.uint8
    assert sd.images(32, 24, "face") is images and sd.images(16, 12, "face").shape[1:3] == (16, 12)


def test_the_sampler_seed_differs_per_worker_and_on_resume_only() -> None:
    assert sampler_seed(None) is None
    assert sampler_seed(5) == 5 and sampler_seed(5, worker_index=2) == 7, "a fresh study keeps the study's seed"
    resumed = sampler_seed(5, trials_so_far=8)
    assert resumed != 5 and resumed == sampler_seed(5, trials_so_far=8), "a resumed study draws anew, reproducibly"
    assert resumed != sampler_seed(5, trials_so_far=9)
