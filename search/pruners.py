"""Study-file pruners: the ``[pruner]`` table -> an Optuna pruner.

Kept apart from ``search.prepare`` so that the pruning benchmarks build exactly the pruner a
study would, without opening a study or its data.

What the pruner compares is ``[pruner] signal``: macro-F1 or the validation loss. Whatever it
is, a trial's intermediate values are its validation macro-F1 per epoch, so that the dashboard
shows one scale. A trial records its signal per epoch in the user attribute ``pruning_curve``
and, when the signal is not macro-F1, ``SignalPruner`` shows the wrapped Optuna pruner that
curve in place of the intermediate values.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from search.study import PrunerSpec

CURVE_ATTR = "pruning_curve"  # user attribute: the pruning signal per epoch (index 0 = epoch 1), higher is better


def reported_value(signal: str, macro_f1: float, val_loss: float) -> float:
    """What a trial shows its pruner for ``signal``: higher is better either way, as for the study's F1."""
    return -val_loss if signal == "val_loss" else macro_f1


def with_signal(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` whose intermediate values are its pruning curve (epoch -> signal)."""
    curve: Sequence[float] = trial.user_attrs.get(CURVE_ATTR) or []
    shown = copy.copy(trial)
    shown.intermediate_values = {epoch: float(v) for epoch, v in enumerate(curve, start=1)}
    return shown


class _SignalStudyView:
    """The study as a pruner should see it: every trial's intermediate values are its pruning curve.

    Only ``get_trials`` differs; Hyperband's bracket studies read the storage itself, but they
    compare the rung values that successive halving stored from the curves shown here.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [with_signal(t) for t in self._study.get_trials(*args, **kwargs)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class SignalPruner(BasePruner):
    """Runs ``inner`` on the trials' pruning curves instead of their intermediate values."""

    def __init__(self, inner: BasePruner) -> None:
        self.inner = inner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_SignalStudyView(study), with_signal(trial))  # type: ignore[arg-type]


class CompleteFloorPruner(BasePruner):
    """Stops no trial while fewer than ``min_complete`` trials of the study are complete.

    So a study always leaves the ensemble real choices, however strong its first trials were.
    ``inner`` is still asked at every epoch, so successive halving records each trial's rung
    values and later trials are compared with these complete ones too.
    """

    def __init__(self, inner: BasePruner, min_complete: int) -> None:
        self.inner, self.min_complete = inner, min_complete

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        decision = self.inner.prune(study, trial)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return decision and len(complete) >= self.min_complete


def make_pruner(spec: PrunerSpec, epochs: int) -> BasePruner:
    """The pruner a study file's ``[pruner]`` names, shown ``spec.signal``; ``epochs`` is a trial's budget."""
    pruner = _optuna_pruner(spec, epochs)
    if isinstance(pruner, optuna.pruners.NopPruner):
        return pruner
    if spec.signal != "macro_f1":
        pruner = SignalPruner(pruner)
    if spec.min_complete > 0:
        pruner = CompleteFloorPruner(pruner, spec.min_complete)
    return pruner


def _optuna_pruner(spec: PrunerSpec, epochs: int) -> BasePruner:
    if spec.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.min_resource, max_resource=epochs, reduction_factor=spec.reduction_factor
        )
    if spec.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_resource, reduction_factor=spec.reduction_factor
        )
    if spec.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.min_resource)
    if spec.name == "percentile":
        return optuna.pruners.PercentilePruner(
            spec.percentile, n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.min_resource
        )
    return optuna.pruners.NopPruner()
