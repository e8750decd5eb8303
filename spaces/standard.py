"""The standard define-by-run space: every TrialConfig field the study's ``[params]`` names is
searched, the rest come from ``[fixed]``.

Unfrozen depth is conditional on the backbone: its range ends at that backbone's number of
stages, so it is asked under a per-backbone name (``unfrozen_depth.resnet50``). TPE's
``group=True`` then models each backbone's depth only from trials of that backbone.

A few fields only mean something under another choice (``CONDITIONS``): they are asked only
then, and otherwise keep their fixed or default value, so TPE never models a knob that did
nothing and no trial pairs, say, an oversampled-only augmentation with no oversampling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.trial import BaseTrial

from runners.config import TrialConfig
from runners.heads import HEADS
from spaces._params import IntRange
from spaces._spec import SpaceSpec

DEPTH = "unfrozen_depth"
_DEFAULTS = TrialConfig()

Condition = Callable[[Callable[[str], Any]], bool]
CONDITIONS: dict[str, Condition] = {
    "head_hidden": lambda v: v("head_type") == "mlp",
    "head_dropout": lambda v: v("head_type") == "mlp",
    "restart_epochs": lambda v: v("schedule") == "cosine_restarts",
    "step_epochs": lambda v: v("schedule") == "step",
    "plateau_patience": lambda v: v("schedule") == "plateau",
    "lr_decay": lambda v: v("schedule") in ("step", "plateau"),
    "augment_scope": lambda v: v("oversample") != "none" and v("augment") != "none",
    "age_loss_weight": lambda v: HEADS.get(v("head")).learns_age,
}


def suggest(trial: BaseTrial, spec: SpaceSpec) -> TrialConfig:
    values = dict(spec.fixed)
    for name, param in spec.params.items():
        if name != DEPTH and name not in CONDITIONS:
            values[name] = param.suggest(trial, name)

    def value(name: str) -> Any:
        return values.get(name, getattr(_DEFAULTS, name))

    for name, param in spec.params.items():
        if name in CONDITIONS and CONDITIONS[name](value):
            values[name] = param.suggest(trial, name)
    if DEPTH in spec.params:
        values[DEPTH] = _suggest_depth(trial, spec, value("backbone"))
    return TrialConfig.from_dict(values)


def depth_param_name(backbone: str) -> str:
    return f"{DEPTH}.{backbone}"


def _suggest_depth(trial: BaseTrial, spec: SpaceSpec, backbone: str) -> int:
    param = spec.params[DEPTH]
    if backbone not in spec.stage_counts:
        raise ValueError(
            f"No stage count for backbone {backbone!r}; the study must pass stage_counts for every backbone."
        )
    n_stages = spec.stage_counts[backbone]
    if isinstance(param, IntRange):
        return param.suggest(trial, depth_param_name(backbone), upper=n_stages)
    choices = [c for c in param.values() if c == -1 or 0 <= c <= n_stages]
    if not choices:
        raise ValueError(f"None of the unfrozen_depth choices {param.values()} fit {backbone} ({n_stages} stages).")
    return trial.suggest_categorical(depth_param_name(backbone), choices)
