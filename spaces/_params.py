"""Parameter specs of a study file's ``[params]`` table and how each asks a trial for a value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from optuna.trial import BaseTrial


@dataclass(frozen=True)
class Categorical:
    choices: tuple[Any, ...]

    def suggest(self, trial: BaseTrial, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)

    def values(self) -> tuple[Any, ...]:
        return self.choices


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def suggest(self, trial: BaseTrial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def values(self) -> tuple[float, ...]:
        return (self.low, self.high)


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int | None  # None: "all", bounded per trial (unfrozen depth by the backbone's stages)
    log: bool = False
    step: int = 1

    def suggest(self, trial: BaseTrial, name: str, upper: int | None = None) -> int:
        high = self.high if upper is None else min(upper, self.high if self.high is not None else upper)
        if high is None:
            raise ValueError(f"Parameter {name!r} has high = 'all' but no upper bound was given.")
        return trial.suggest_int(name, min(self.low, high), high, log=self.log, step=self.step)

    def values(self) -> tuple[int, ...]:
        return tuple(v for v in (self.low, self.high) if v is not None)


ParamSpec = Categorical | FloatRange | IntRange


def parse_param(name: str, value: Any) -> ParamSpec:
    """A TOML value -> spec: a list is categorical, a table {low, high, log, step} a range."""
    if isinstance(value, list):
        if not value:
            raise ValueError("an empty list of choices; give at least one value.")
        return Categorical(tuple(value))
    if not isinstance(value, dict):
        raise ValueError(
            f"expected a list of choices or a table {{low, high, log, step}} but got {value!r}; "
            "put constants in [fixed]."
        )
    unknown = set(value) - {"low", "high", "log", "step"}
    if unknown or "low" not in value or "high" not in value:
        raise ValueError(f"a range needs exactly low, high and optionally log, step; got keys {sorted(value)}.")
    low, high, log, step = value["low"], value["high"], bool(value.get("log", False)), value.get("step")
    if high == "all":
        if not isinstance(low, int):
            raise ValueError(f"high = 'all' needs an integer low, got {low!r}.")
        return IntRange(low, None, log, step or 1)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high)):
        raise ValueError(f"low and high must be numbers, got {low!r} and {high!r}.")
    if low > high:
        raise ValueError(f"low {low} is above high {high}.")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0, got {low}.")
    if isinstance(low, int) and isinstance(high, int) and not isinstance(step, float):
        return IntRange(low, high, log, step or 1)
    if step is not None and log:
        raise ValueError("a float range cannot have both log and step.")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite.")
    return FloatRange(float(low), float(high), log, step)
