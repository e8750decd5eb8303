"""Known-good trials a study runs before it samples: ``[[profiles.<p>.enqueue]]`` tables.

Each table is one whole configuration in TrialConfig names: a value for every param the
profile searches and the configuration asks (``unfrozen_depth = "all"`` means every stage of
the table's backbone), plus, if wanted for the reader, fixed keys at their fixed value. Tables
are checked when the study file loads (each value inside the profile's searched range, the
result a valid TrialConfig) and turned into the params Optuna's ``enqueue_trial`` takes. They
live under a profile, so they run only on the device they are written for, and they are
enqueued once, when the study is created; a resumed study never enqueues them again.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FixedTrial

from runners.config import TrialConfig
from spaces import Categorical, FloatRange, IntRange, ParamSpec, SpaceSpec, get_space
from search.storage.trial_attrs import TrialAttrs
from spaces.standard import DEPTH, depth_param_name

if TYPE_CHECKING:
    from search.studyfile.spec import StudySpec

ENQUEUED_ATTR = "enqueued"  # study user attr: how many known-good trials the study was created with
_CONFIG_KEYS = {f.name for f in dataclasses.fields(TrialConfig)}
_DEFAULTS = TrialConfig()


def enqueue_params(table: Any, spec: StudySpec, where: str) -> dict[str, Any]:
    """The Optuna params of one enqueue table; a ValueError naming ``where`` and the key otherwise."""
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{where} must be a table of TrialConfig values, got {table!r}.")
    searched: dict[str, Any] = {}
    for key, value in table.items():
        if key in spec.params:
            searched[key] = value
        elif key in _CONFIG_KEYS:
            current = spec.fixed.get(key, getattr(_DEFAULTS, key))
            if value != current:
                raise ValueError(
                    f"{where}.{key} = {value!r}, but this profile does not search {key} (it is {current!r}): "
                    f"add {key} to the profile's params, or leave it out of the enqueued trial."
                )
        else:
            valid = ", ".join(sorted(_CONFIG_KEYS))
            raise ValueError(f"{where}.{key} is not a TrialConfig field; valid keys: {valid}.")
    for key, value in searched.items():
        if key != DEPTH:
            _check_value(spec.params[key], value, f"{where}.{key}")
    if DEPTH in searched:
        backbone = searched.get("backbone", spec.fixed.get("backbone", _DEFAULTS.backbone))
        searched[depth_param_name(backbone)] = _depth(spec.params[DEPTH], searched.pop(DEPTH), backbone, where)
    return _replay(searched, spec, where)


def enqueue_known_good(study: optuna.Study, spec: StudySpec) -> int:
    """Enqueue the profile's known-good trials in a study just created; returns how many."""
    for params in spec.enqueue:
        study.enqueue_trial(params, user_attrs=TrialAttrs.values(enqueued_from=str(spec.path)), skip_if_exists=True)
    study.set_user_attr(ENQUEUED_ATTR, len(spec.enqueue))
    return len(spec.enqueue)


def _check_value(param: ParamSpec, value: Any, where: str) -> None:
    if isinstance(param, Categorical):
        if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in param.choices):
            raise ValueError(f"{where} = {value!r} is not one of the searched choices {list(param.choices)}.")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number in the searched range, got {value!r}.")
    if isinstance(param, IntRange) and not isinstance(value, int):
        raise ValueError(f"{where} = {value!r} must be a whole number: the study searches it as an integer range.")
    high = param.high if param.high is not None else float("inf")
    if not param.low <= value <= high:
        raise ValueError(f"{where} = {value!r} is outside the searched range [{param.low}, {param.high}].")
    if isinstance(param, FloatRange) and param.step is not None:
        steps = (value - param.low) / param.step
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"{where} = {value!r} is not on the range's step {param.step} from {param.low}.")


def _depth(param: ParamSpec, value: Any, backbone: str, where: str) -> int:
    from runners.models import count_stages  # timm: imported only for a table that sets the depth

    n_stages = count_stages(backbone)
    if value == "all":
        value = n_stages if isinstance(param, IntRange) else -1
    _check_value(param, value, f"{where}.{DEPTH}")
    if not (value == -1 and isinstance(param, Categorical)) and not 0 <= value <= n_stages:
        raise ValueError(
            f"{where}.{DEPTH} = {value} is beyond {backbone}'s {n_stages} stages (use 'all' for every one)."
        )
    return int(value)


def _replay(searched: dict[str, Any], spec: StudySpec, where: str) -> dict[str, Any]:
    """Run the study's space on the table: every asked param must be given, every given one asked."""
    backbone = searched.get("backbone", spec.fixed.get("backbone", _DEFAULTS.backbone))
    stages = {backbone: _stage_count(backbone)} if DEPTH in spec.params else {}
    trial = FixedTrial(searched)
    try:
        get_space(spec.space)(trial, SpaceSpec(dict(spec.fixed), dict(spec.params), stages))
    except ValueError as exc:
        missing = re.search(r"parameter '([^']+)' is not found", str(exc))
        if missing:
            name = missing.group(1).split(".")[0]
            raise ValueError(
                f"{where} gives no value for {name!r}, which the profile searches: a known-good trial is a whole "
                "configuration, so give every searched param."
            ) from None
        raise ValueError(f"{where} does not make a valid trial config: {exc}") from None
    unused = sorted(set(searched) - set(trial.params))
    if unused:
        raise ValueError(
            f"{where} sets {unused}, which this configuration never asks (a setting of another choice, "
            "e.g. head_hidden without head_type = 'mlp'); leave them out."
        )
    return searched


def _stage_count(backbone: str) -> int:
    from runners.models import count_stages

    return count_stages(backbone)
