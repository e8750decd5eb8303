"""Open (create or resume) a study and the data every one of its trials shares.

The first run of a study records, in the study's user attributes (search/storage/study_attrs.py), the
data fingerprint and the person split; every later trial, resumed run and extra worker reads them back, so all
trials of a study are scored on the same validation people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna

from search.data import (
    PersonSplit,
    TrainData,
    image_cache,
    load_eval,
    load_train,
    split_people,
)
from search.benches.synth.default import default_data_root
from search.studyfile.enqueue import enqueue_known_good
from search.studyfile.pruners import make_pruner
from search.studyfile.samplers import SAMPLERS
from search.storage.backends import StorageSettings, open_storage, redact
from search.studyfile.parse import StudySpec
from search.storage.study_attrs import StudyAttrs
from search.storage.trialstore import TrialStore, Validation

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


def sampler_seed(seed: int | None, worker_index: int = 0, trials_so_far: int = 0) -> int | None:
    """The sampler's seed: the study's plus the worker index, mixed with the number of trials the
    study already holds, so a resumed study does not draw its first trials' parameters again
    (a fresh study's first worker keeps the study's seed as it is)."""
    if seed is None:
        return None
    base = seed + worker_index
    if trials_so_far == 0:
        return base
    return int(np.random.SeedSequence([base % 2**32, trials_so_far]).generate_state(1)[0])


def make_sampler(spec: StudySpec, worker_index: int = 0, trials_so_far: int = 0) -> optuna.samplers.BaseSampler:
    seed = sampler_seed(spec.sampler.seed, worker_index, trials_so_far)
    return SAMPLERS.get(spec.sampler.name)(spec.sampler, seed)


def trials_in(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    """How many trials (any state) the study ``study_name`` holds; 0 when it does not exist yet."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def check_eval(root: Path) -> None:
    """Validate ``root/eval`` when it exists (every info.csv row has its image), before the study starts."""
    if (root / "eval").is_dir():
        load_eval(root / "eval", check_images=False)


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
    check_eval(root)
    name = study_name or spec.name
    storage = open_storage(storage_url, storage_settings or StorageSettings())
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(spec, worker_index, trials_in(storage, name)),
        pruner=make_pruner(spec.pruner, spec.base_config().epochs),
        direction="maximize",
        load_if_exists=True,
    )
    attrs = StudyAttrs.find(study)
    if attrs is not None:
        if attrs.data_fingerprint != data.fingerprint:
            raise StudyMismatchError(
                f"Study {name!r} in {redact(storage_url)} was created on data {attrs.data_root} "
                f"(fingerprint {attrs.data_fingerprint[:12]}); {root} (fingerprint {data.fingerprint[:12]}) "
                "differs, so its trials would not be comparable. Use --name for a new study on this data."
            )
        recorded = attrs.pruning_signal
        if recorded != spec.pruner.signal:
            raise StudyMismatchError(
                f"Study {name!r} in {redact(storage_url)} reported {recorded} to its pruner; {spec.path} says "
                f"[pruner] signal = {spec.pruner.signal!r}, and the pruner would compare new trials with old ones "
                f"on different scales. Set signal = {recorded!r} in the study file to resume it, "
                "or use --name for a new study."
            )
        split = attrs.split
    else:
        split = split_people(data, val_fraction=spec.split.val_fraction, seed=spec.split.seed)
        # Every worker computes the same split from the same data and seed, so racing writers agree.
        StudyAttrs(
            data_fingerprint=data.fingerprint,
            split=split,
            data_root=str(root.resolve()),
            relabel=str(relabel) if relabel else None,
            study_file=str(spec.path),
            profile=spec.profile,
            workdir=str(Path(workdir).resolve()),
            description=spec.description,
            pruning_signal=spec.pruner.signal,
            folds=spec.split.folds,
        ).write(study)
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
