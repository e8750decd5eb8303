"""What a trial records in its user attributes, as one dataclass: its key names are the field
names, defined here once.

The objective, the run's workers and the reaper write them with :meth:`TrialAttrs.set` (a name that
is no field is an error); the progress log, the budget, the report, the dashboard note, the
ensemble, refit, clean and the pruners read them back with :meth:`TrialAttrs.read`, never by string
key. A key a study stored before it existed, or a value of another type (an edited study), reads as
the field's default, so every old study still reads.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

Trial = FrozenTrial | optuna.trial.BaseTrial


@dataclass(frozen=True)
class TrialAttrs:
    # written when the trial starts (search.engine.objective, search.engine.runstudy)
    config: dict[str, Any] | None = None  # the TrialConfig dict the trial trained
    pruning_signal: str = "macro_f1"  # trials from before [pruner] signal existed reported macro-F1
    worker: str | None = None  # "host:pid" of the process that ran it (search.storage.reaper)
    enqueued_from: str | None = None  # the study file whose known-good trial it is (search.studyfile.enqueue)
    # written as it runs and ends
    pruning_curve: list[float] | None = None  # the pruning signal per epoch (index 0 = epoch 1), higher is better
    cut_by_budget: str | None = None  # a complete trial the time budget stopped: why
    traceback: str | None = None  # the tail of the traceback of a trial that raised
    # the trial's summary, runners.results.TrialResult.to_summary (also its result.json)
    status: str | None = None
    failure_reason: str | None = None
    best_epoch: int | None = None
    best_macro_f1: float | None = None
    epochs_run: int | None = None
    per_class_f1: list[float] = field(default_factory=list)
    confusion: list[list[int]] | None = None
    val_accuracy: float | None = None
    seconds_per_epoch: float | None = None
    train_images_per_s: float | None = None
    device: str | None = None
    augment_on: str | None = None
    n_params: int | None = None
    n_trainable: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, trial: Trial) -> TrialAttrs:
        """The trial's attributes; a missing or mistyped one is the field's default."""
        return cls.from_dict(trial.user_attrs)

    @classmethod
    def from_dict(cls, attrs: Mapping[str, Any]) -> TrialAttrs:
        kinds = _kinds()
        return cls(**{k: v for k, v in attrs.items() if k in kinds and _fits(v, kinds[k])})

    @classmethod
    def values(cls, **values: Any) -> dict[str, Any]:
        """``values`` as user attributes, each checked to be a field of the field's type."""
        kinds = _kinds()
        _check_names(values)
        for name, value in values.items():
            if not _fits(value, kinds[name]):
                raise TypeError(f"trial attribute {name} must be {_spelled(kinds[name])} but got {value!r}.")
        return dict(values)

    @classmethod
    def set(cls, trial: optuna.trial.BaseTrial, **values: Any) -> None:
        """Record ``values`` in the (running) trial's user attributes."""
        for name, value in cls.values(**values).items():
            trial.set_user_attr(name, value)

    @classmethod
    def without(cls, attrs: Mapping[str, Any], *names: str) -> dict[str, Any]:
        """``attrs`` less the attributes ``names`` (a retried trial's copy starts without them)."""
        _check_names(names)
        return {k: v for k, v in attrs.items() if k not in names}


@functools.cache
def _kinds() -> dict[str, tuple[type, ...]]:
    """Field name -> the Python types its stored (JSON) value may have."""
    hints = typing.get_type_hints(TrialAttrs)
    return {f.name: _types(hints[f.name]) for f in dataclasses.fields(TrialAttrs)}


def _check_names(names: typing.Iterable[str]) -> None:
    unknown = sorted(set(names) - set(_kinds()))
    if unknown:
        raise ValueError(f"{unknown} are no trial attributes; the trial attributes are {sorted(_kinds())}.")


def _types(hint: Any) -> tuple[type, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _types(arg))
    if hint is type(None):
        return (type(None),)
    origin = typing.get_origin(hint) or hint
    return (int, float) if origin is float else (origin,)


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # a JSON true is no number
        return bool in kinds
    return isinstance(value, kinds)


def _spelled(kinds: tuple[type, ...]) -> str:
    return " or ".join(dict.fromkeys("null" if k is type(None) else k.__name__ for k in kinds))
