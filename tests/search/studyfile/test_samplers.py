from __future__ import annotations

import optuna
import pytest

from search.studyfile.samplers import SAMPLERS
from search.studyfile.spec import SamplerSpec


def test_each_sampler_is_built_with_the_seed_and_an_unknown_name_lists_them() -> None:
    tpe = SAMPLERS.get("tpe")(SamplerSpec(n_startup_trials=3), 7)
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._n_startup_trials == 3
    assert isinstance(SAMPLERS.get("random")(SamplerSpec(name="random"), 7), optuna.samplers.RandomSampler)
    with pytest.raises(ValueError, match=r"unknown sampler 'grid'; one of \['tpe', 'random'\]"):
        SAMPLERS.get("grid")


def test_the_same_seed_draws_the_same_parameters() -> None:
    def draws(seed: int) -> list[float]:
        study = optuna.create_study(sampler=SAMPLERS.get("random")(SamplerSpec(), seed))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        return [t.params["x"] for t in study.trials]

    assert draws(1) == draws(1) != draws(2)
