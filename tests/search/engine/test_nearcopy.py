"""search/engine/nearcopy.py: which sampled trial repeats one the study holds."""

from __future__ import annotations

import warnings

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import PartialFixedSampler, RandomSampler

from search.engine.nearcopy import differences, near, near_copy_of

SPACE = {
    "lr": FloatDistribution(1e-3, 6e-3, log=True),
    "focal_gamma": FloatDistribution(0.0, 3.0),
    "unfrozen_depth": IntDistribution(3, 8),
    "head": CategoricalDistribution(["single", "ordinal"]),
}
KNOWN_GOOD = {"lr": 5.8e-3, "focal_gamma": 2.6, "unfrozen_depth": 7, "head": "single"}


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=RandomSampler(seed=0))


def _sampled(study: optuna.Study, params: dict[str, object]) -> optuna.Trial:
    """A trial whose parameters the sampler drew (not enqueued) and which are ``params``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = PartialFixedSampler(params, RandomSampler(seed=1))
    trial = study.ask()
    trial.suggest_float("lr", 1e-3, 6e-3, log=True)
    trial.suggest_float("focal_gamma", 0.0, 3.0)
    trial.suggest_int("unfrozen_depth", 3, 8)
    trial.suggest_categorical("head", ["single", "ordinal"])
    return trial


def test_the_samplers_redraw_of_the_enqueued_trial_is_a_near_copy_of_it() -> None:
    study = _study()
    study.enqueue_trial(KNOWN_GOOD)
    enqueued = study.ask(SPACE)
    assert near_copy_of(enqueued) is None, "a trial given its parameters always runs"
    study.tell(enqueued, 0.52)
    redraw = _sampled(study, {**KNOWN_GOOD, "lr": 0.00577, "focal_gamma": 2.61})
    twin = near_copy_of(redraw)
    assert twin is not None and twin.number == enqueued.number
    assert differences(redraw.params, twin.params) == "lr 0.00577 / 0.0058, focal_gamma 2.61 / 2.6"


def test_a_trial_apart_on_any_parameter_is_not_a_copy() -> None:
    study = _study()
    study.enqueue_trial(KNOWN_GOOD)
    study.tell(study.ask(SPACE), 0.52)
    for apart in ({"lr": 5.2e-3},  # 6 % of the log range
                  {"focal_gamma": 2.5},  # 3.3 % of the range
                  {"unfrozen_depth": 6},
                  {"head": "ordinal"}):
        assert near_copy_of(_sampled(study, {**KNOWN_GOOD, **apart})) is None, apart


def test_a_running_trial_has_copies_too_and_a_failed_one_has_none() -> None:
    study = _study()
    running = _sampled(study, KNOWN_GOOD)
    copy = _sampled(study, {**KNOWN_GOOD, "focal_gamma": 2.62})
    assert (twin := near_copy_of(copy)) is not None and twin.number == running.number
    study.tell(running, state=optuna.trial.TrialState.FAIL)
    study.tell(copy, state=optuna.trial.TrialState.FAIL)
    assert near_copy_of(_sampled(study, KNOWN_GOOD)) is None, "a failed trial is no result: run it again"


def test_near_needs_the_same_parameters() -> None:
    assert not near({"lr": 1e-3}, {"lr": 1e-3, "head": "single"}, SPACE)
    assert near({"lr": 1e-3, "head": "single"}, {"lr": 1.01e-3, "head": "single"}, SPACE)
