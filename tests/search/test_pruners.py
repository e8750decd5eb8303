"""Pruners as the study files build them: the floor of complete trials and the signal the pruner reads."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from search.pruners import CURVE_ATTR, make_pruner
from search.study import PrunerSpec


def _run(pruner: optuna.pruners.BasePruner, curves: list[list[float]]) -> list[TrialState]:
    """Each curve is one trial's per-epoch value, reported as macro-F1 and as its pruning curve."""
    study = optuna.create_study(study_name="floor", direction="maximize", pruner=pruner)
    states = []
    for curve in curves:
        trial, state = study.ask(), TrialState.COMPLETE
        for epoch, value in enumerate(curve, start=1):
            trial.set_user_attr(CURVE_ATTR, curve[:epoch])
            trial.report(value, epoch)
            if epoch < len(curve) and trial.should_prune():
                state = TrialState.PRUNED
                break
        study.tell(trial, max(curve) if state == TrialState.COMPLETE else None, state=state)
        states.append(state)
    return states


def test_no_trial_is_stopped_before_min_complete_trials_have_completed() -> None:
    # a strong first trial, then weaker ones: successive halving alone stops every later trial at epoch 1
    curves = [[0.9, 0.95, 0.96]] + [[0.5 + 0.01 * i, 0.6, 0.65] for i in range(3)] + [[0.1, 0.2, 0.25]] * 4
    spec = PrunerSpec(name="successive_halving", min_resource=1, reduction_factor=2)
    assert _run(make_pruner(spec, 3), curves)[1:4] == [TrialState.PRUNED] * 3
    floored = _run(make_pruner(PrunerSpec(name="successive_halving", min_resource=1, reduction_factor=2,
                                          min_complete=4), 3), curves)
    assert floored[:4] == [TrialState.COMPLETE] * 4
    assert TrialState.PRUNED in floored[4:]  # after the floor the pruner works as before


def test_a_loss_signal_is_read_from_the_curve_not_the_intermediate_values() -> None:
    # F1 says trial 1 is the worst at epoch 1; its (negated) loss says it is the best: the loss decides.
    spec = PrunerSpec(name="median", signal="val_loss", min_resource=1, n_startup_trials=2)
    study = optuna.create_study(study_name="signal", direction="maximize", pruner=make_pruner(spec, 3))
    for f1, loss in ((0.5, -1.0), (0.6, -1.2)):
        t = study.ask()
        t.set_user_attr(CURVE_ATTR, [loss, loss])
        t.report(f1, 1)
        t.report(f1, 2)
        study.tell(t, f1)
    low_f1_low_loss, high_f1_high_loss = study.ask(), study.ask()
    low_f1_low_loss.set_user_attr(CURVE_ATTR, [-0.5])
    low_f1_low_loss.report(0.1, 1)
    assert not low_f1_low_loss.should_prune()
    high_f1_high_loss.set_user_attr(CURVE_ATTR, [-3.0])
    high_f1_high_loss.report(0.9, 1)
    assert high_f1_high_loss.should_prune()
