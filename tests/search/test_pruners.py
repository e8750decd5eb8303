"""The headroom pruner's rule, on hand-made learning curves in a real in-memory Optuna study."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from search.pruners import HeadroomPruner, make_pruner
from search.study import StudyFileError, load_study

# Complete trials: a slow starter that gains 0.5 after epoch 1, and a fast one that gains little.
SLOW = [0.4, 0.6, 0.8, 0.9]
FAST = [0.7, 0.72, 0.74, 0.75]


def _study(curves: list[list[float]], direction: str = "maximize", **kwargs: int) -> optuna.Study:
    study = optuna.create_study(direction=direction, pruner=HeadroomPruner(**kwargs))
    for curve in curves:
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
        finite = [v for v in curve if not math.isnan(v)]
        best = max(finite) if direction == "maximize" else min(finite)
        study.tell(trial, best)
    return study


def _decisions(study: optuna.Study, curve: list[float]) -> list[bool]:
    """should_prune after each epoch of a new trial reporting ``curve`` (it is never stopped here)."""
    trial = study.ask()
    out = []
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
        out.append(bool(trial.should_prune()))
    return out


def test_a_trial_goes_on_while_the_largest_gain_from_its_epoch_could_still_make_it_best() -> None:
    study = _study([SLOW, FAST])
    # epoch 1: 0.45 + 0.5 (SLOW's gain from epoch 1) = 0.95 >= 0.9, go on;
    # epoch 2: 0.55 + 0.3 = 0.85 < 0.9, prune.
    assert _decisions(study, [0.45, 0.55]) == [False, True]
    # 0.61 + 0.3 = 0.91: still within reach at epoch 2; at epoch 3, 0.62 + 0.1 < 0.9.
    assert _decisions(study, [0.45, 0.61, 0.62]) == [False, False, True]
    # The best so far counts, not the last value: a dip after a good epoch is not pruned.
    assert _decisions(study, [0.45, 0.85, 0.5]) == [False, False, False]


def test_nothing_is_pruned_before_the_startup_trials_are_complete_or_before_min_resource() -> None:
    assert _decisions(_study([SLOW]), [0.0, 0.0, 0.0]) == [False] * 3
    assert _decisions(_study([SLOW, FAST], n_startup_trials=3), [0.0, 0.0, 0.0]) == [False] * 3
    assert _decisions(_study([SLOW, FAST], min_resource=3), [0.0, 0.0, 0.0]) == [False, False, True]


def test_only_complete_trials_that_reached_the_epoch_give_its_headroom() -> None:
    # SHORT stopped early after epoch 2 (best 0.95); at epoch 3 only SLOW and FAST reached it.
    short = [0.3, 0.95]
    study = _study([SLOW, FAST, short])
    # epoch 3: best 0.95; gains from epoch 3 are 0.1 (SLOW) and 0.01 (FAST): 0.8 + 0.1 < 0.95.
    assert _decisions(study, [0.5, 0.75, 0.8]) == [False, False, True]
    # with one trial at epoch 3 and n_startup_trials 2, epoch 3 has too few gains to judge
    study = _study([SLOW, short])
    assert _decisions(study, [0.35, 0.36, 0.37]) == [False, True, False]


def test_a_minimised_study_mirrors_the_rule() -> None:
    study = _study([[1 - v for v in SLOW], [1 - v for v in FAST]], direction="minimize")
    assert _decisions(study, [0.55, 0.45]) == [False, True]
    assert _decisions(study, [0.55, 0.39]) == [False, False]


def test_nan_scores_are_pruned_and_ignored_in_gains() -> None:
    study = _study([SLOW, FAST])
    assert _decisions(study, [math.nan]) == [True]
    # A complete trial whose first epoch was NaN has no gain from epoch 1 (a NaN gain would hide the others).
    study = _study([[math.nan, 0.5, 0.6, 0.7], SLOW, FAST])
    assert _decisions(study, [0.1]) == [True]


@pytest.mark.parametrize("kwargs", [{"n_startup_trials": 0}, {"min_resource": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        HeadroomPruner(**kwargs)


def test_study_files_name_the_headroom_pruner(tmp_path: Path) -> None:
    path = tmp_path / "h.toml"
    path.write_text("[pruner]\nname = 'headroom'\nmin_resource = 2\nn_startup_trials = 3\n"
                    "[fixed]\nepochs = 4\n[params]\nlr = [0.1]\n")
    spec = load_study(path)
    pruner = make_pruner(spec.pruner, spec.base_config().epochs)
    assert isinstance(pruner, HeadroomPruner)
    assert (pruner._n_startup_trials, pruner._min_resource) == (3, 2)
    path.write_text("[pruner]\nname = 'headroom'\nn_startup_trials = 0\n[params]\nlr = [0.1]\n")
    with pytest.raises(StudyFileError, match="h.toml.*n_startup_trials.*headroom"):
        load_study(path)


def test_the_rule_reads_intermediate_values_not_the_trial_value() -> None:
    # The objective may return something other than the best epoch (here 0.0); the curves decide.
    study = optuna.create_study(direction="maximize", pruner=HeadroomPruner())
    for curve in (SLOW, FAST):
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
        study.tell(trial, 0.0)
    assert _decisions(study, [0.45, 0.55]) == [False, True]
