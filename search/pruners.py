"""Study-file pruners: the ``[pruner]`` table -> an Optuna pruner.

Kept apart from ``search.prepare`` so that the pruning benchmarks build exactly the pruner a
study would, without opening a study or its data. What the pruner compares (macro-F1 or the
validation loss) is ``[pruner] signal``, applied where trials report (``search.objective``).
"""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner

from search.study import PrunerSpec


def reported_value(signal: str, macro_f1: float, val_loss: float) -> float:
    """What a trial reports to its pruner for ``signal``: higher is better either way, as for the study's F1."""
    return -val_loss if signal == "val_loss" else macro_f1


def make_pruner(spec: PrunerSpec, epochs: int) -> BasePruner:
    """The pruner a study file's ``[pruner]`` names; ``epochs`` is a trial's full budget."""
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
