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
import sqlalchemy.exc
from optuna.trial import FrozenTrial, TrialState

from runners.classes import NUM_CLASSES
from search.ensemble.selection import Candidate
from search.refit.members import with_refits
from search.storage import (
    DEFAULT_WORKDIR,
    STORAGE_ERRORS,
    default_storage_url,
    open_storage,
    redact,
    storage_error,
)
from search.study_attrs import StudyAttrs
from search.trialstore import TrialStore, Validation

log = logging.getLogger(__name__)


@dataclass
class CandidatePool:
    study: str  # the main study
    workdir: Path  # its TrialStore work folder
    attrs: StudyAttrs  # what the main study recorded at creation (data_root, relabel, split, ...)
    validation: Validation
    candidates: list[Candidate]
    notes: list[str] = field(default_factory=list)  # what was left out, and why


def resolve_storage(storage: str | None, workdir: Path | None) -> str:
    return storage or default_storage_url(Path(workdir) if workdir is not None else DEFAULT_WORKDIR)


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
    for scheme in ("sqlite:///", "journal://"):
        path = url.removeprefix(scheme)
        if url.startswith(scheme) and path not in ("", ":memory:") and not Path(path).exists():
            raise ValueError(
                f"the storage file {path} does not exist, so it holds no study; pass the --storage "
                "(or --workdir) the study was run with."
            )


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
        config = trial.user_attrs.get("config") or store.load_config(trial.number)
        candidates.append(
            Candidate(name, trial.number, probs, dict(config), trial.value, store.weights_path(trial.number, last=True))
        )
    candidates, refit_notes = with_refits(store, name, validation, candidates)
    return study, root, validation, candidates, notes + refit_notes


def _best_before_last(trial: FrozenTrial) -> bool:
    best, ran = trial.user_attrs.get("best_epoch"), trial.user_attrs.get("epochs_run")
    return isinstance(best, int) and isinstance(ran, int) and best < ran


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
