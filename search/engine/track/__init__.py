"""Experiment trackers: ``--track mlflow`` or ``--track wandb``.

On ``python -m search.run`` and ``python -m search.worker`` every finished trial becomes one
tracker run (its config as parameters, validation macro-F1 and loss per epoch, its per-class F1
and confusion matrix); on ``python -m search.ensemble`` and ``python -m search.export`` the
study's ensemble becomes one more run (held-out, in-sample and bench scores of every method,
its members and weights). Optional: ``pip install -e ".[track]"``.

Where it goes (``--track-to`` changes it): MLflow, a local SQLite store
``<workdir>/mlflow.db`` with artifacts in ``<workdir>/mlartifacts`` (view it with
``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``); W&B, offline runs under
``<workdir>/wandb`` (``wandb sync runs/wandb/offline-run-*`` uploads them; ``WANDB_MODE=online``
logs straight to the server). A tracker that fails is logged once and the study goes on.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from pathlib import Path
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial

from search.engine.track.records import EnsembleLog, TrialLog, trial_log
from search.storage.urls import redact

log = logging.getLogger(__name__)

TRACKERS = ("mlflow", "wandb")
INSTALL_HINT = 'pip install -e ".[track]"'


class Tracker(Protocol):
    where: str  # where the runs go, safe to print

    def log_trial(self, record: TrialLog) -> None: ...

    def log_ensemble(self, record: EnsembleLog) -> None: ...


def add_track_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--track", choices=TRACKERS,
                   help=f"log to an experiment tracker (needs {INSTALL_HINT}): mlflow (local store "
                        "<workdir>/mlflow.db) or wandb (offline runs under <workdir>/wandb)")
    p.add_argument("--track-to", dest="track_to", metavar="TARGET",
                   help="mlflow: a tracking URI (default sqlite:///<workdir>/mlflow.db); wandb: the folder "
                        "that holds the wandb/ run folders (default <workdir>)")


def check_installed(kind: str | None) -> None:
    """Before any work: a ValueError naming the install command when ``kind``'s package is missing."""
    if kind is None:
        return
    if kind not in TRACKERS:
        raise ValueError(f"--track must be one of {list(TRACKERS)} but got {kind!r}.")
    if importlib.util.find_spec(kind) is None:
        raise ValueError(f"--track {kind} needs the {kind} package, which is not installed: {INSTALL_HINT}")


def open_tracker(kind: str, workdir: Path, study: str, target: str | None = None) -> Tracker:
    """The tracker ``kind`` for ``study``; a ValueError naming the fix when it is not installed."""
    check_installed(kind)
    try:
        if kind == "mlflow":
            from search.engine.track.mlflow_tracker import MlflowTracker

            return MlflowTracker(Path(workdir), study, target)
        from search.engine.track.wandb_tracker import WandbTracker

        return WandbTracker(Path(workdir), study, target)
    except ImportError as exc:
        raise ValueError(f"--track {kind} needs the {kind} package ({exc.name} is missing): {INSTALL_HINT}") from None
    except Exception as exc:  # a bad --track-to, a store that cannot be opened: one line, before any trial
        where = "" if target is None else f" at --track-to {redact(target)}"
        raise ValueError(f"--track {kind}: cannot open the tracker{where} ({type(exc).__name__}: "
                         f"{redact(str(exc))[:300]}).") from exc


class TrackCallback:
    """An Optuna callback: each finished trial is logged once; a tracker error is logged, not raised."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.failed = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not trial.state.is_finished() or self.failed:
            return
        try:
            self.tracker.log_trial(trial_log(study.study_name, trial))
        except Exception as exc:  # the tracker is a side channel: the study goes on without it
            self.failed = True
            log.warning("tracker %s failed (%s: %s); the study goes on without it", self.tracker.where,
                        type(exc).__name__, exc)


def view_command(kind: str, workdir: Path, target: str | None = None) -> str:
    """How to look at what ``--track kind`` logged (a URI's password left out)."""
    if kind == "mlflow":
        from search.engine.track.records import mlflow_uri

        return f"mlflow ui --backend-store-uri {redact(mlflow_uri(workdir, target))}"
    folder = Path(target) if target else Path(workdir)
    return f"wandb sync {folder / 'wandb'}/offline-run-*   (offline runs; WANDB_MODE=online logs directly)"


def track_ensemble(kind: str, workdir: Path, record: EnsembleLog, target: str | None = None) -> str:
    """Log an ensemble run; returns where it went."""
    tracker = open_tracker(kind, workdir, record.study, target)
    tracker.log_ensemble(record)
    return tracker.where


__all__ = ["TRACKERS", "TrackCallback", "Tracker", "add_track_args", "check_installed", "open_tracker", "track_ensemble"]
