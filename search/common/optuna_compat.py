"""The one place that touches Optuna's private API.

The harness needs a few things Optuna has no public name for: the storage behind a study (to
fail a dead worker's trial, list a trial's artifacts, read every study of a storage), a trial's
storage id, whether a storage runs heartbeats, a stored study's id, and the type of an artifact
store. Optuna may move or rename any of these in a minor release; keeping every use here means an
upgrade touches this file only, and ``tests/search/common/test_optuna_compat.py`` says at once which
of them moved. Every other module imports these names from here.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import optuna
from optuna.artifacts._protocol import ArtifactStore
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import FrozenTrial

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy

__all__ = ["ArtifactStore", "heartbeat_enabled", "no_experimental_warnings", "stored_study_id", "study_storage",
           "trial_id"]


@contextlib.contextmanager
def no_experimental_warnings() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the features this harness chose on purpose
    (heartbeats, their retry callback, TPE's ``group``, the gRPC proxy); other warnings still show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def study_storage(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (``study._storage``)."""
    return study._storage


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """A trial's id in its storage (``_trial_id``), which the storage's setters take; not its number."""
    return trial._trial_id


def heartbeat_enabled(study: optuna.Study) -> bool:
    """Whether Optuna itself fails this study's trials whose worker went silent (an RDB storage with a heartbeat)."""
    return is_heartbeat_enabled(study_storage(study))


def stored_study_id(summary: FrozenStudy) -> int:
    """The storage's id of a study listed by ``storage.get_all_studies()`` (``_study_id``)."""
    return summary._study_id
