"""Pruners as the study files build them: the registry, the floor of complete trials and the signal
the pruner reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.storage.trial_attrs import TrialAttrs
from search.studyfile.pruners import (
    PRUNERS,
    PrunerSpec,
    check_pruner,
    list_pruners,
    make_pruner,
    register_pruner,
)
from search.studyfile.parse import StudyFileError, load_study_spec


def _run(pruner: optuna.pruners.BasePruner, curves: list[list[float]]) -> list[TrialState]:
    """Each curve is one trial's per-epoch value, reported as macro-F1 and as its pruning curve."""
    study = optuna.create_study(study_name="floor", direction="maximize", pruner=pruner)
    states = []
    for curve in curves:
        trial, state = study.ask(), TrialState.COMPLETE
        for epoch, value in enumerate(curve, start=1):
            TrialAttrs.set(trial, pruning_curve=curve[:epoch])
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
        TrialAttrs.set(t, pruning_curve=[loss, loss])
        t.report(f1, 1)
        t.report(f1, 2)
        study.tell(t, f1)
    low_f1_low_loss, high_f1_high_loss = study.ask(), study.ask()
    TrialAttrs.set(low_f1_low_loss, pruning_curve=[-0.5])
    low_f1_low_loss.report(0.1, 1)
    assert not low_f1_low_loss.should_prune()
    TrialAttrs.set(high_f1_high_loss, pruning_curve=[-3.0])
    high_f1_high_loss.report(0.9, 1)
    assert high_f1_high_loss.should_prune()


def test_the_registry_holds_the_study_files_pruners_in_their_documented_order() -> None:
    assert list_pruners() == ["hyperband", "successive_halving", "median", "percentile", "none"]
    built = {name: make_pruner(PrunerSpec(name=name, min_complete=0), 4) for name in list_pruners()}
    assert isinstance(built["hyperband"], optuna.pruners.HyperbandPruner)
    assert isinstance(built["percentile"], optuna.pruners.PercentilePruner)
    assert isinstance(built["none"], optuna.pruners.NopPruner)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        (PrunerSpec(name="median", n_startup_trials=-1), "pruner.n_startup_trials"),
        (PrunerSpec(name="hyperband", reduction_factor=1), "pruner.reduction_factor"),
        (PrunerSpec(name="percentile", percentile=100.0), "pruner.percentile"),
        (PrunerSpec(name="none", signal="loss"), "pruner.signal"),
        (PrunerSpec(name="asha"), "pruner.name"),
    ],
)
def test_a_pruner_checks_its_own_arguments_when_it_is_built(spec: PrunerSpec, key: str) -> None:
    with pytest.raises(StudyFileError, match=rf"^studies/x\.toml: {key} "):
        make_pruner(spec, 4, source="studies/x.toml")


def test_building_checks_only_the_keys_the_pruner_reads_while_a_study_file_checks_every_key() -> None:
    unread = PrunerSpec(name="median", reduction_factor=1)  # median has no reduction factor
    assert isinstance(make_pruner(unread, 4), optuna.pruners.MedianPruner)
    with pytest.raises(StudyFileError, match="f.toml: pruner.reduction_factor must be at least 2"):
        check_pruner(unread, "f.toml")


@pytest.fixture
def threshold_pruner() -> Iterator[str]:
    """A pruner registered for one test, as a new study-file pruner would be."""
    register_pruner("threshold_test", ("n_startup_trials",))(
        lambda spec, epochs: optuna.pruners.ThresholdPruner(lower=0.0, n_warmup_steps=spec.n_startup_trials)
    )
    yield "threshold_test"
    PRUNERS.remove("threshold_test")


def test_a_registered_pruner_is_usable_from_a_study_file_and_checked_there(
    threshold_pruner: str, tmp_path: Path
) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f"[pruner]\nname = '{threshold_pruner}'\nn_startup_trials = 2\n[params]\nlr = [0.1]\n")
    spec = load_study_spec(path)
    assert isinstance(make_pruner(spec.pruner, 4, path), optuna.pruners.ThresholdPruner)
    path.write_text(f"[pruner]\nname = '{threshold_pruner}'\nn_startup_trials = -1\n[params]\nlr = [0.1]\n")
    with pytest.raises(StudyFileError, match=r"p\.toml: pruner\.n_startup_trials must be a whole number >= 0"):
        load_study_spec(path)


def test_a_registration_that_clashes_or_reads_no_pruner_key_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_pruner("median")(lambda spec, epochs: optuna.pruners.NopPruner())
    with pytest.raises(ValueError, match="no \\[pruner\\] keys"):
        register_pruner("typo_test", ("warmup",))(lambda spec, epochs: optuna.pruners.NopPruner())
    assert "typo_test" not in PRUNERS
