"""Ensemble candidates: the completed trials of one or more studies whose checkpoints are on disk.

Every candidate is scored on validation probabilities its validation people chose nothing about,
so that trials and fold groups (search.refit) compete on one footing: a trial at its last epoch
(weights and probabilities; a best epoch chosen on the same people scores it too high), a fold
group on its out-of-fold probabilities. A trial stored before trials kept their last epoch is
scored at its best epoch, and a note says so.

A study's trials live in its Optuna storage (value, config) and in its TrialStore folder
(validation probabilities and weights). Extra studies may join only when they were scored on
the very same validation rows of the same data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from runners.classes import NUM_CLASSES
from search.ensembling.selection import Candidate
from search.ensembling.refits import with_refits
from search.storage.backends import DEFAULT_WORKDIR, resolve_storage
from search.storage.studies import open_stored_study
from search.storage.study_attrs import StudyAttrs
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore, Validation

log = logging.getLogger(__name__)


@dataclass
class CandidatePool:
    study: str  # the main study
    workdir: Path  # its TrialStore work folder
    attrs: StudyAttrs  # what the main study recorded at creation (data_root, relabel, split, ...)
    validation: Validation
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def _study_candidates(
    name: str, storage_url: str, workdir: Path | None
) -> tuple[optuna.Study, Path, Validation, list[Candidate], list[str]]:
    study = open_stored_study(name, storage_url)
    recorded = StudyAttrs.read(study).workdir
    root = Path(workdir) if workdir is not None else Path(recorded) if recorded else DEFAULT_WORKDIR
    store = TrialStore(root, name)
    validation = store.load_validation()
    on_disk = set(store.trial_numbers())
    candidates: list[Candidate] = []
    notes: list[str] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.number not in on_disk:
            notes.append(f"{name}#{trial.number}: checkpoint not kept (outside the study's top-N retention)")
            continue
        probs = store.load_probs(trial.number, last=True)
        if not store.has_last(trial.number) and _best_before_last(trial):
            notes.append(f"{name}#{trial.number}: scored at its best epoch, not its last (stored without it)")
        if probs.shape != (len(validation.labels), NUM_CLASSES):
            raise ValueError(
                f"{store.trial_dir(trial.number)}/val_probs.npy has shape {probs.shape} but the study's "
                f"validation "
                f"set has {len(validation.labels)} rows; the trial folder does not belong to this study."
            )
        config = TrialAttrs.read(trial).config or store.load_config(trial.number)
        candidates.append(
            Candidate(name, trial.number, probs, dict(config), trial.value, store.weights_path(trial.number, last=True))
        )
    candidates, refit_notes = with_refits(store, name, validation, candidates)
    return study, root, validation, candidates, notes + refit_notes


def _best_before_last(trial: FrozenTrial) -> bool:
    attrs = TrialAttrs.read(trial)
    return attrs.best_epoch is not None and attrs.epochs_run is not None and attrs.best_epoch < attrs.epochs_run


def load_candidates(
    study: str,
    storage: str | None = None,
    workdir: Path | None = None,
    extra_studies: Sequence[str] = (),
) -> CandidatePool:
    """Candidates of ``study`` and of ``extra_studies`` (same storage, same validation rows)."""
    url = resolve_storage(storage, workdir)
    main, root, validation, candidates, notes = _study_candidates(study, url, workdir)
    for extra in extra_studies:
        if extra == study:
            continue
        _, _, val2, more, more_notes = _study_candidates(extra, url, workdir)
        if val2.fingerprint != validation.fingerprint or not np.array_equal(val2.rows, validation.rows):
            raise ValueError(
                f"study {extra!r} was validated on other data or other people than {study!r} "
                f"(fingerprint {val2.fingerprint[:12]} vs {validation.fingerprint[:12]}, "
                f"{len(val2.rows)} vs {len(validation.rows)} rows); only studies on the same data and split "
                "combine."
            )
        candidates += more
        notes += more_notes
    if not candidates:
        raise ValueError(
            f"study {study!r} has no completed trial with a checkpoint on disk under {root}; "
            "run more trials (python -m search.run) or pass the --workdir the study used."
        )
    for note in notes:
        log.info("note: %s", note)
    return CandidatePool(study, root, StudyAttrs.read(main), validation, candidates, notes)
