"""Study-file pruners: the ``[pruner]`` table -> an Optuna pruner, through a registry of named pruners.

Each entry of :data:`PRUNERS` builds one Optuna pruner and names the ``[pruner]`` keys it reads;
it checks them when it is built (and ``search.studyfile.parse`` has them checked when the file loads),
raising ``StudyFileError`` that names the study file and the key. A new pruner is one
``register_pruner`` entry. Kept apart from ``search.engine.prepare`` so that the pruning benchmarks
build exactly the pruner a study would, without opening a study or its data.

What the pruner compares is ``[pruner] signal``: macro-F1 or the validation loss. Whatever it
is, a trial's intermediate values are its validation macro-F1 per epoch, so that the dashboard
shows one scale. A trial records its signal per epoch in the user attribute ``pruning_curve``
and, when the signal is not macro-F1, ``SignalPruner`` shows the wrapped Optuna pruner that
curve in place of the intermediate values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from runners.registry import Registry
from search.storage.trial_attrs import TrialAttrs
from search.studyfile.validate import StudyFileError, check_fields

# What a trial reports after each epoch, for its pruner to compare: its validation macro-F1, or its
# validation cross-entropy (reported negated, so that higher is better in a study that maximises F1).
PRUNING_SIGNALS = ("macro_f1", "val_loss")


@dataclass(frozen=True)
class PrunerSpec:
    """A study file's ``[pruner]`` table."""

    name: str = "hyperband"
    signal: str = "macro_f1"  # what trials report each epoch: one of PRUNING_SIGNALS
    min_resource: int = 1  # epochs every trial gets before it can be pruned
    reduction_factor: int = 3  # hyperband, successive_halving: 1 in this many goes on at each rung
    n_startup_trials: int = 2  # median, percentile: complete trials needed before they prune anything
    percentile: float = 50.0  # percentile: a trial goes on while in the top this-% of complete trials at its epoch
    min_complete: int = 0  # no trial is stopped while fewer than this many trials of the study have completed


def reported_value(signal: str, macro_f1: float, val_loss: float) -> float:
    """What a trial shows its pruner for ``signal``: higher is better either way, as for the study's F1."""
    return -val_loss if signal == "val_loss" else macro_f1


def with_signal(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` whose intermediate values are its pruning curve (epoch -> signal)."""
    curve: Sequence[float] = TrialAttrs.read(trial).pruning_curve or []
    shown = copy.copy(trial)
    shown.intermediate_values = {epoch: float(v) for epoch, v in enumerate(curve, start=1)}
    return shown


class _SignalStudyView:
    """The study as a pruner should see it: every trial's intermediate values are its pruning curve.

    Only ``get_trials`` differs; Hyperband's bracket studies read the storage itself, but they
    compare the rung values that successive halving stored from the curves shown here.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def get_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return [with_signal(t) for t in self._study.get_trials(*args, **kwargs)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class SignalPruner(BasePruner):
    """Runs ``inner`` on the trials' pruning curves instead of their intermediate values."""

    def __init__(self, inner: BasePruner) -> None:
        self.inner = inner

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(_SignalStudyView(study), with_signal(trial))  # type: ignore[arg-type]


class CompleteFloorPruner(BasePruner):
    """Stops no trial while fewer than ``min_complete`` trials of the study are complete.

    So a study always leaves the ensemble real choices, however strong its first trials were.
    ``inner`` is still asked at every epoch, so successive halving records each trial's rung
    values and later trials are compared with these complete ones too.
    """

    def __init__(self, inner: BasePruner, min_complete: int) -> None:
        self.inner, self.min_complete = inner, min_complete

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        decision = self.inner.prune(study, trial)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return decision and len(complete) >= self.min_complete


# --- the registry ---------------------------------------------------------------------------------

Source = Path | str  # where a PrunerSpec came from, for messages: a study file, or e.g. a benchmark's rule


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _at_least_one(value: Any) -> str | None:
    return None if _whole(value, 1) else f"must be a positive integer, got {value!r}"


def _reduction_factor(value: Any) -> str | None:
    return _at_least_one(value) or (None if value >= 2 else f"must be at least 2, got {value}")


def _at_least_zero(value: Any) -> str | None:
    return None if _whole(value, 0) else f"must be a whole number >= 0, got {value!r}"


def _percentile(value: Any) -> str | None:
    usable = not isinstance(value, bool) and isinstance(value, int | float) and 0.0 < value < 100.0
    return None if usable else f"must be in (0, 100), got {value!r}"


def _signal(value: Any) -> str | None:
    return None if value in PRUNING_SIGNALS else f"must be one of {list(PRUNING_SIGNALS)}, got {value!r}"


# One rule per [pruner] key: None when the value is usable, else what it must be.
ARGUMENT_RULES: dict[str, Callable[[Any], str | None]] = {
    "signal": _signal,
    "min_resource": _at_least_one,
    "reduction_factor": _reduction_factor,
    "n_startup_trials": _at_least_zero,
    "min_complete": _at_least_zero,
    "percentile": _percentile,
}
COMMON_ARGUMENTS = ("signal", "min_complete")  # every pruner takes these: make_pruner wraps it with them


@dataclass(frozen=True)
class PrunerEntry:
    """One named pruner: the Optuna pruner it builds, and the ``[pruner]`` keys that builder reads."""

    name: str
    factory: Callable[[PrunerSpec, int], BasePruner]  # (spec, a trial's epochs) -> pruner
    arguments: tuple[str, ...]

    def check(self, spec: PrunerSpec, source: Source) -> None:
        """StudyFileError naming ``source`` and the key for a value this pruner cannot use."""
        for key in (*self.arguments, *COMMON_ARGUMENTS):
            _check_argument(spec, key, source)

    def build(self, spec: PrunerSpec, epochs: int, source: Source) -> BasePruner:
        self.check(spec, source)
        return self.factory(spec, epochs)


PRUNERS: Registry[PrunerEntry] = Registry("pruner")


def register_pruner(
    name: str, arguments: tuple[str, ...] = ()
) -> Callable[[Callable[[PrunerSpec, int], BasePruner]], Callable[[PrunerSpec, int], BasePruner]]:
    """Decorator adding a factory ``(spec, epochs) -> BasePruner`` under ``name``, reading ``arguments``."""

    def decorate(factory: Callable[[PrunerSpec, int], BasePruner]) -> Callable[[PrunerSpec, int], BasePruner]:
        unknown = set(arguments) - set(ARGUMENT_RULES)
        if unknown:
            raise ValueError(f"pruner {name!r} reads {sorted(unknown)}, which are no [pruner] keys.")
        PRUNERS.add(name, PrunerEntry(name, factory, arguments))
        return factory

    return decorate


def list_pruners() -> list[str]:
    """Pruner names in the order they were registered (the order error messages list them in)."""
    return PRUNERS.names()


def check_pruner(spec: PrunerSpec, source: Source) -> None:
    """Raise StudyFileError, naming ``source`` and the key, for a ``[pruner]`` table that cannot be used."""
    check_fields(spec, source, "pruner")
    entry = _entry(spec, source)
    entry.check(spec, source)
    # A key the named pruner does not read must still hold a usable value: the file may switch to a
    # pruner that reads it, and a wrong value there is a mistake either way.
    for key in ARGUMENT_RULES.keys() - {*entry.arguments, *COMMON_ARGUMENTS}:
        _check_argument(spec, key, source)


def make_pruner(spec: PrunerSpec, epochs: int, source: Source = "[pruner]") -> BasePruner:
    """The pruner a study file's ``[pruner]`` names, shown ``spec.signal``; ``epochs`` is a trial's budget."""
    pruner = _entry(spec, source).build(spec, epochs, source)
    if isinstance(pruner, optuna.pruners.NopPruner):
        return pruner
    if spec.signal != "macro_f1":
        pruner = SignalPruner(pruner)
    if spec.min_complete > 0:
        pruner = CompleteFloorPruner(pruner, spec.min_complete)
    return pruner


def _entry(spec: PrunerSpec, source: Source) -> PrunerEntry:
    if spec.name not in PRUNERS:
        raise StudyFileError(f"{source}: pruner.name must be one of {list_pruners()}, got {spec.name!r}.")
    return PRUNERS.get(spec.name)


def _check_argument(spec: PrunerSpec, key: str, source: Source) -> None:
    problem = ARGUMENT_RULES[key](getattr(spec, key))
    if problem:
        raise StudyFileError(f"{source}: pruner.{key} {problem}.")


@register_pruner("hyperband", ("min_resource", "reduction_factor"))
def _hyperband(spec: PrunerSpec, epochs: int) -> BasePruner:
    return optuna.pruners.HyperbandPruner(
        min_resource=spec.min_resource, max_resource=epochs, reduction_factor=spec.reduction_factor
    )


@register_pruner("successive_halving", ("min_resource", "reduction_factor"))
def _successive_halving(spec: PrunerSpec, epochs: int) -> BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.min_resource, reduction_factor=spec.reduction_factor)


@register_pruner("median", ("n_startup_trials", "min_resource"))
def _median(spec: PrunerSpec, epochs: int) -> BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.min_resource)


@register_pruner("percentile", ("percentile", "n_startup_trials", "min_resource"))
def _percentile_pruner(spec: PrunerSpec, epochs: int) -> BasePruner:
    return optuna.pruners.PercentilePruner(
        spec.percentile, n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.min_resource
    )


@register_pruner("none")
def _none(spec: PrunerSpec, epochs: int) -> BasePruner:
    return optuna.pruners.NopPruner()
