"""Open (create or resume) a study and the data every one of its trials shares.

The first run of a study records, in the study's user attributes, the data fingerprint and
the person split; every later trial, resumed run and extra worker reads them back, so all
trials of a study are scored on the same validation people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna

from search.data import PersonSplit, TrainData, default_data_root, image_cache, load_train, split_people
from search.enqueue import enqueue_known_good
from search.pruners import make_pruner
from search.storage import StorageSettings, open_storage, redact
from search.study import StudySpec
from search.trialstore import TrialStore, Validation

log = logging.getLogger(__name__)


class StudyMismatchError(RuntimeError):
    """The study in storage was made for other data; resuming it would compare apples with pears."""


@dataclass
class StudyData:
    """The data of one study, shared by all its trials in a worker process."""

    data: TrainData
    split: PersonSplit
    train_rows: np.ndarray
    val_rows: np.ndarray
    cache_dir: Path

    _images: dict[tuple[int, int, str], np.ndarray] = field(default_factory=dict, repr=False)

    def images(self, height: int, width: int, crop: str) -> np.ndarray:
        """The decoded-image cache at this size (memory-mapped; built on first use)."""
        key = (height, width, crop)
        if key not in self._images:
            paths = self.data.images["path"].tolist()
            self._images[key] = image_cache(paths, height, width, crop, self.cache_dir, key=self.data.image_fingerprint)
        return self._images[key]

    def validation(self) -> Validation:
        return Validation(
            rows=self.val_rows,
            labels=self.data.labels[self.val_rows],
            people=self.data.images["person"].to_numpy()[self.val_rows].astype(str),
            fingerprint=self.data.fingerprint,
        )


def make_sampler(spec: StudySpec, worker_index: int = 0) -> optuna.samplers.BaseSampler:
    seed = None if spec.sampler.seed is None else spec.sampler.seed + worker_index
    if spec.sampler.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=spec.sampler.n_startup_trials,
        multivariate=True,
        group=True,  # unfrozen depth is conditional on the backbone
        constant_liar=True,  # parallel workers don't all sample the same point
    )


def open_study(
    spec: StudySpec,
    storage_url: str,
    workdir: Path,
    data_root: Path | None = None,
    relabel: Path | None = None,
    study_name: str | None = None,
    worker_index: int = 0,
    storage_settings: StorageSettings | None = None,
) -> tuple[optuna.Study, StudyData]:
    """Create the study or resume it; returns it with its data, split and cache ready."""
    root = Path(data_root) if data_root is not None else default_data_root()
    data = load_train(root, relabel=relabel, verified_dir=Path(workdir) / "cache")
    name = study_name or spec.name
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(storage_url, storage_settings or StorageSettings()),
        sampler=make_sampler(spec, worker_index),
        pruner=make_pruner(spec.pruner, spec.base_config().epochs),
        direction="maximize",
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if "data_fingerprint" in attrs:
        if attrs["data_fingerprint"] != data.fingerprint:
            raise StudyMismatchError(
                f"Study {name!r} in {redact(storage_url)} was created on data {attrs.get('data_root')} "
                f"(fingerprint {attrs['data_fingerprint'][:12]}); {root} (fingerprint {data.fingerprint[:12]}) "
                "differs, so its trials would not be comparable. Use --name for a new study on this data."
            )
        # Studies from before [pruner] signal existed reported macro-F1 to their pruner.
        recorded = attrs.get("pruning_signal", "macro_f1")
        if recorded != spec.pruner.signal:
            raise StudyMismatchError(
                f"Study {name!r} in {redact(storage_url)} reported {recorded} to its pruner; {spec.path} says "
                f"[pruner] signal = {spec.pruner.signal!r}, and the pruner would compare new trials with old ones "
                f"on different scales. Set signal = {recorded!r} in the study file to resume it, "
                "or use --name for a new study."
            )
        split = PersonSplit.from_dict(attrs["split"])
    else:
        split = split_people(data, val_fraction=spec.split.val_fraction, seed=spec.split.seed)
        # Every worker computes the same split from the same data and seed, so racing writers agree.
        for key, value in {
            "data_fingerprint": data.fingerprint,
            "data_root": str(root.resolve()),
            "relabel": str(relabel) if relabel else None,
            "split": split.to_dict(),
            "study_file": str(spec.path),
            "profile": spec.profile,
            "workdir": str(Path(workdir).resolve()),
            "description": spec.description,
            "pruning_signal": spec.pruner.signal,
        }.items():
            study.set_user_attr(key, value)
        # Only here, at creation: a resumed study (even one made before enqueue existed) gets none.
        if enqueue_known_good(study, spec):
            log.info("study %s: %d known-good trials enqueued from %s", name, len(spec.enqueue), spec.path.name)
    train_rows, val_rows = split.indices(data)
    study_data = StudyData(data, split, train_rows, val_rows, Path(workdir) / "cache")
    TrialStore(workdir, name).save_validation(study_data.validation())
    log.info(
        "study %s: %d people (%d train / %d validation), %d images, storage %s",
        name, len(data.people), len(split.train_people), len(split.val_people), len(data.images),
        redact(storage_url),
    )
    return study, study_data
