"""WHAT to try: search spaces, define-by-run, typed against ``optuna.trial.BaseTrial``.

A space is a function ``suggest(trial, spec: SpaceSpec) -> TrialConfig``. Because it only asks
the trial, ``optuna.trial.FixedTrial(params)`` replays any finished trial's exact config.
"""

from __future__ import annotations

from collections.abc import Callable

from optuna.trial import BaseTrial

from runners.config import TrialConfig
from spaces import standard
from spaces._params import Categorical, FloatRange, IntRange, ParamSpec, parse_param
from spaces._spec import SpaceSpec

Space = Callable[[BaseTrial, SpaceSpec], TrialConfig]

SPACES: dict[str, Space] = {"standard": standard.suggest}


def list_spaces() -> list[str]:
    return sorted(SPACES)


def get_space(name: str) -> Space:
    if name not in SPACES:
        raise ValueError(f"Unknown search space {name!r}; valid spaces: {', '.join(list_spaces())}.")
    return SPACES[name]


__all__ = [
    "Categorical",
    "FloatRange",
    "IntRange",
    "ParamSpec",
    "Space",
    "SpaceSpec",
    "get_space",
    "list_spaces",
    "parse_param",
]
