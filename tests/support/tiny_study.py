"""A tiny finished study for the ensemble, export and predict tests, built for real.

A small synthetic bench is drawn with ``search.benches.synth.generate`` (eval labels included),
loaded and split with ``search.data``, four trials are trained with ``runners.fit`` (timm test
models at 32x32, pretrained=False), saved with ``TrialStore.save_trial``, and recorded in an
Optuna SQLite study with the user attributes ``search.run`` writes (``StudyAttrs.write``). The
bundle is exported once with the real ``python -m search.export`` entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest

from runners import ImageSet, fit
from runners.config import TrialConfig
from search.data import PersonSplit, TrainData, image_cache, load_train, split_people
from search.storage.study_attrs import StudyAttrs
from search.benches.synth import generate
from search.storage.trialstore import TrialStore, Validation

STUDY = "tiny"
SIZE = 32

# (backbone, age_cutoff, lr, seed): two backbones, three cutoffs, for diversity caps to bite on
TRIALS = (
    ("test_resnet", 60, 3e-3, 0),
    ("test_efficientnet", 58, 3e-3, 0),
    ("test_resnet", 59, 1e-3, 1),
    ("test_efficientnet", 60, 1e-3, 2),
)


@dataclass(frozen=True)
class TinyStudy:
    data_root: Path
    workdir: Path
    storage: str
    name: str
    data: TrainData
    validation: Validation
    configs: tuple[TrialConfig, ...]

    @property
    def store(self) -> TrialStore:
        return TrialStore(self.workdir, self.name)

    def val_paths(self) -> list[str]:
        return [self.data.paths[r] for r in self.validation.rows]


@dataclass(frozen=True)
class TinyData:
    """A drawn synthetic data set, its person split, the trial store with the validation rows
    saved, and the SIZExSIZE full-photo image cache: what a recorded test study is built on."""

    root: Path
    workdir: Path
    data: TrainData
    split: PersonSplit
    train_rows: np.ndarray
    val_rows: np.ndarray
    validation: Validation
    store: TrialStore
    images: np.ndarray


def tiny_data(
    tmp_path_factory: pytest.TempPathFactory, study: str, people: int, n_eval_people: int, val_fraction: float
) -> TinyData:
    root = generate(
        tmp_path_factory.mktemp("data") / "bench",
        people=people,
        size=(48, 64),
        seed=0,
        n_eval_people=n_eval_people,
        progress=False,
    )
    workdir = tmp_path_factory.mktemp("runs")
    data = load_train(root)
    split = split_people(data, val_fraction=val_fraction, seed=0)
    train_rows, val_rows = split.indices(data)
    people_ids = data.images["person"].to_numpy().astype(str)
    validation = Validation(val_rows, data.labels[val_rows], people_ids[val_rows], data.fingerprint)
    store = TrialStore(workdir, study)
    store.save_validation(validation)
    images = image_cache(data.paths, SIZE, SIZE, "full", workdir / "cache", key=data.fingerprint)
    return TinyData(root, workdir, data, split, train_rows, val_rows, validation, store, images)


def trial_config(backbone: str, cutoff: int, lr: float, seed: int, size: int, epochs: int) -> TrialConfig:
    """A tiny trial of a timm test model on the full photo."""
    return TrialConfig(
        backbone=backbone,
        age_cutoff=cutoff,
        lr=lr,
        seed=seed,
        height=size,
        width=size,
        crop="full",
        epochs=epochs,
        batch_size=32,
        patience=2,
    )


def train_and_record(
    study: optuna.Study,
    store: TrialStore,
    number: int,
    config: TrialConfig,
    images: np.ndarray,
    data: TrainData,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
) -> None:
    """Train ``config`` for real and record it as ``search.run`` does: the trial folder and a
    complete Optuna trial with the user attributes the ensemble and refit read."""
    train = ImageSet(images, train_rows, data.training_labels(config.age_cutoff)[train_rows])
    val = ImageSet(images, val_rows, data.labels[val_rows])
    result = fit(config, train, val, device="cpu")
    assert result.status == "complete", result.reason
    last = None if result.last_state_dict is None else (result.last_state_dict, result.last_val_probs)
    store.save_trial(number, result.state_dict, result.val_probs, config.to_dict(), result.to_summary(), last)
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=result.best_macro_f1,
            user_attrs={
                "config": config.to_dict(),
                "per_class_f1": result.per_class_f1,
                "best_epoch": result.best_epoch,
                "epochs_run": len(result.history),
                "seconds_per_epoch": 1.0,
            },
        )
    )


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    d = tiny_data(tmp_path_factory, STUDY, people=48, n_eval_people=8, val_fraction=0.34)
    root, workdir, data, split, validation, store = d.root, d.workdir, d.data, d.split, d.validation, d.store
    storage = f"sqlite:///{workdir / 'studies.db'}"
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize")
    attrs = StudyAttrs(data_fingerprint=data.fingerprint, split=split, data_root=str(root), workdir=str(workdir))
    attrs.write(study)
    configs = []
    for number, (backbone, cutoff, lr, seed) in enumerate(TRIALS):
        config = trial_config(backbone, cutoff, lr, seed, SIZE, epochs=1)
        train_and_record(study, store, number, config, d.images, data, d.train_rows, d.val_rows)
        configs.append(config)
    assert [t.number for t in study.trials] == list(range(len(TRIALS)))
    return TinyStudy(root, workdir, storage, STUDY, data, validation, tuple(configs))


@pytest.fixture(scope="session")
def bundle_dir(tiny_study: TinyStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from search.export import main

    out = tmp_path_factory.mktemp("exports") / "tiny"
    rc = main(
        ["--name", tiny_study.name, "--storage", tiny_study.storage, "--out", str(out), "--max-members", "3"]
    )
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def mixed_bundles(tiny_study: TinyStudy, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two-member bundles (soft and hard vote) whose members differ in input size and crop:
    trial 0 of the tiny study (32x32, full photo) and an untrained test_efficientnet at 40x24 on
    the face crop (timm, pretrained=False), written by the deploy writer."""
    import torch
    from safetensors.torch import save_file

    from runners.models import build_model
    from search.deploy.writer import BundleSpec, MemberSource, write_bundle

    root = tmp_path_factory.mktemp("mixed")
    torch.manual_seed(0)
    face = TrialConfig(backbone="test_efficientnet", height=40, width=24, crop="face", pretrained=False)
    model = build_model(face).eval()
    weights = root / "face.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    sources = [
        MemberSource(f"{STUDY}#0", tiny_study.configs[0].to_dict(), (tiny_study.store.weights_path(0),), 0.5,
                     STUDY, 0),
        MemberSource("face#0", face.to_dict(), (weights,), 0.5, "face", 0),
    ]
    bundles = {}
    for vote in ("soft", "hard"):
        write_bundle(sources, root / vote, BundleSpec(vote=vote, weights_from="given"))
        bundles[vote] = root / vote
    return bundles
