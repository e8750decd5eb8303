"""Study-file samplers: ``[sampler] name`` -> an Optuna sampler, through the registry ``SAMPLERS``.

An entry builds the sampler from the ``[sampler]`` table and the seed the run mixed for this
worker (search.engine.prepare.sampler_seed); a new sampler is one ``@SAMPLERS.register`` here.
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from runners.registry import Registry
from search.storage.backends import no_experimental_warnings
from search.studyfile.spec import SamplerSpec

SamplerFactory = Callable[[SamplerSpec, "int | None"], optuna.samplers.BaseSampler]
SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


@SAMPLERS.register("tpe")
def _tpe(spec: SamplerSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    with no_experimental_warnings():  # group is experimental in Optuna; chosen on purpose
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=spec.n_startup_trials,
            multivariate=True,
            group=True,  # unfrozen depth is conditional on the backbone
            constant_liar=True,  # parallel workers don't all sample the same point
        )


@SAMPLERS.register("random")
def _random(spec: SamplerSpec, seed: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)
