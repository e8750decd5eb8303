from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spaces._params import ParamSpec


@dataclass(frozen=True)
class SpaceSpec:
    """What a space needs from a study: constants, searched params, and per-backbone facts."""

    fixed: dict[str, Any] = field(default_factory=dict)
    params: dict[str, ParamSpec] = field(default_factory=dict)
    stage_counts: dict[str, int] = field(default_factory=dict)  # backbone -> number of stages
