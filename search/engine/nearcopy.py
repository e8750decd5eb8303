"""A sampled trial that repeats, within rounding, one the study has run or is running: not trained.

A seeded sampler can draw again a configuration the study already holds. ``age_cutoff``'s CPU
profile enqueues the trial its seed-0 sampler met third on the dev benches, so that sampler's own
third draw came back as the study's fourth trial (lr 0.00577 against 0.0058, gamma 2.61 against
2.6) and trained the same model again: 3-4 minutes of a 30-minute real-face run
(benchmarks/README.md, "A known-good first CPU trial"). Such a trial ends at once as FAIL with a
``not run:`` reason; failed trials neither count against ``n_trials`` nor inform TPE, so the next
trial draws afresh. Trials whose parameters were given (enqueued, or queued again) always run.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

NEAR = 0.02  # of a float parameter's range (of its log range when sampled on a log scale)
NOT_RUN = "not run:"  # how a trial that ended FAIL without training says why (it is not a failure)


def near_copy_of(trial: optuna.Trial) -> FrozenTrial | None:
    """The complete or running trial whose parameters ``trial``'s repeat within rounding, if any;
    None for a trial whose parameters were given rather than sampled."""
    others = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    me = next((t for t in others if t.number == trial.number), None)
    if me is not None and "fixed_params" in me.system_attrs:  # Optuna's mark of an enqueued trial
        return None
    return next(
        (t for t in others if t.number != trial.number and near(trial.params, t.params, trial.distributions)),
        None,
    )


def near(a: dict[str, Any], b: dict[str, Any], distributions: dict[str, BaseDistribution]) -> bool:
    """Same parameters, the same choices, and every float within NEAR of its range."""
    if a.keys() != b.keys():
        return False
    return all(_near_value(a[k], b[k], distributions.get(k)) for k in a)


def _near_value(x: Any, y: Any, distribution: BaseDistribution | None) -> bool:
    if not isinstance(distribution, FloatDistribution) or distribution.step is not None:
        return bool(x == y)
    low, high, x, y = distribution.low, distribution.high, float(x), float(y)
    if distribution.log:
        low, high, x, y = (math.log(v) for v in (low, high, x, y))
    return abs(x - y) <= NEAR * (high - low)


def differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    """``lr 0.00577 / 0.0058, focal_gamma 2.61 / 2.6``: the parameters of two near copies that are
    not equal (floats only: ``near`` holds every other kind equal)."""
    return ", ".join(f"{k} {a[k]:.3g} / {b[k]:.3g}" for k in a if a[k] != b[k]) or "the same parameters"
