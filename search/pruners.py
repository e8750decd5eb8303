"""Study-file pruners: the ``[pruner]`` table -> an Optuna pruner.

Optuna's own pruners cover hyperband, successive halving, median and percentile. ``headroom``
is this project's: it stops a trial only when the trial could not reach the study's best value
even if it now gained as much as any complete trial gained from the same epoch on. Learning
curves here cross (a high learning rate starts low and finishes best), so a rank at one epoch
says little; what complete trials went on to gain from that epoch says how far behind a trial
can be and still win. Early, when gains are large, it prunes only hopeless trials; later, when
complete trials gain little, it prunes anything clearly behind.
"""

from __future__ import annotations

import math

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search.study import PrunerSpec


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
    if spec.name == "headroom":
        return HeadroomPruner(n_startup_trials=spec.n_startup_trials, min_resource=spec.min_resource)
    return optuna.pruners.NopPruner()


class HeadroomPruner(BasePruner):
    """Prune when ``best so far + the largest gain any complete trial made from this epoch on``
    is below the best any complete trial reached.

    Everything is read from intermediate values (what the pruner is shown), so the rule holds
    for any reported score, not only one equal to the trial's value. A complete trial's gain
    from epoch ``e`` is its best intermediate value minus its best up to ``e``. Only complete
    trials that reported epoch ``e`` count, so a trial is never judged on a headroom measured at
    another epoch. Nothing is pruned before ``n_startup_trials`` trials are complete, before
    epoch ``min_resource``, or at an epoch that fewer than ``n_startup_trials`` complete trials
    reached.
    """

    def __init__(self, n_startup_trials: int = 2, min_resource: int = 1) -> None:
        if n_startup_trials < 1:
            raise ValueError(f"n_startup_trials must be at least 1 (a gain needs a complete trial), got {n_startup_trials}")
        if min_resource < 1:
            raise ValueError(f"min_resource must be at least 1, got {min_resource}")
        self._n_startup_trials = n_startup_trials
        self._min_resource = min_resource

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self._min_resource:
            return False
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self._n_startup_trials:
            return False
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        mine = _best_up_to(trial, step, sign)
        if math.isnan(mine):
            return True  # a NaN score will not recover
        finals = [_best_up_to(t, math.inf, sign) for t in complete]
        gains = [final - _best_up_to(t, step, sign)
                 for t, final in zip(complete, finals, strict=True) if step in t.intermediate_values]
        gains = [g for g in gains if not math.isnan(g)]
        if len(gains) < self._n_startup_trials:
            return False
        best = max(f for f in finals if not math.isnan(f))
        return mine + max(gains) < best


def _best_up_to(trial: FrozenTrial, step: float, sign: float) -> float:
    """The trial's best intermediate value up to ``step``, in the maximise direction (``sign`` flips a minimise study)."""
    values = [sign * v for s, v in trial.intermediate_values.items() if s <= step and not math.isnan(v)]
    return max(values) if values else math.nan
