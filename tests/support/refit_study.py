"""A tiny finished study for the refit tests, built for real (as tests/support/tiny_study.py does):
a synthetic bench, three trials of timm test models (pretrained=False) trained with
``runners.fit``, saved with ``TrialStore`` and recorded in SQLite with the user attributes
``search.run`` writes, best epoch and epochs run included. Each test gets its own copy of the
work folder, since refits write into it."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import pytest

from search.data import TrainData
from search.storage.study_attrs import StudyAttrs
from search.storage.trialstore import TrialStore, Validation
from tests.support.tiny_study import SIZE, tiny_data, train_and_record, trial_config

STUDY = "tinyrefit"
TRIALS = (("test_resnet", 60, 3e-3, 0), ("test_efficientnet", 58, 3e-3, 0), ("test_resnet", 59, 1e-3, 1))


@dataclass(frozen=True)
class RefitStudy:
    data_root: Path
    workdir: Path
    name: str
    data: TrainData
    validation: Validation

    @property
    def storage(self) -> str:
        return f"sqlite:///{self.workdir / 'studies.db'}"

    @property
    def store(self) -> TrialStore:
        return TrialStore(self.workdir, self.name)


@pytest.fixture(scope="session")
def refit_study_template(tmp_path_factory: pytest.TempPathFactory) -> RefitStudy:
    d = tiny_data(tmp_path_factory, STUDY, people=40, n_eval_people=6, val_fraction=0.3)
    root, workdir, data, split, validation, store = d.root, d.workdir, d.data, d.split, d.validation, d.store
    study_file = workdir / "refit.toml"
    study_file.write_text(
        (Path(__file__).resolve().parents[2] / "studies" / "smoke.toml")
        .read_text()
        .replace("val_fraction = 0.25", "val_fraction = 0.25\nfolds = 3")
    )
    study = optuna.create_study(
        study_name=STUDY, storage=f"sqlite:///{workdir / 'studies.db'}", direction="maximize"
    )
    StudyAttrs(
        data_fingerprint=data.fingerprint,
        split=split,
        data_root=str(root),
        study_file=str(study_file),
        workdir=str(workdir),
    ).write(study)
    for number, (backbone, cutoff, lr, seed) in enumerate(TRIALS):
        config = trial_config(backbone, cutoff, lr, seed, SIZE, epochs=2)
        train_and_record(study, store, number, config, d.images, data, d.train_rows, d.val_rows)
    return RefitStudy(root, workdir, STUDY, data, validation)


@pytest.fixture
def refit_study(refit_study_template: RefitStudy, tmp_path: Path) -> RefitStudy:
    """A private copy of the template's work folder (the data is shared, read-only)."""
    workdir = tmp_path / "runs"
    shutil.copytree(refit_study_template.workdir, workdir)
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{workdir / 'studies.db'}")
    study.set_user_attr("workdir", str(workdir))
    study.set_user_attr("study_file", str(workdir / "refit.toml"))
    return replace(refit_study_template, workdir=workdir)
