"""What a study file says, as frozen dataclasses: ``StudySpec`` and its ``[sampler]``, ``[split]`` and
``[refit]`` tables (the ``[pruner]`` table is ``search.studyfile.pruners.PrunerSpec``). ``search.studyfile.parse`` reads and
validates the file into these; ``search.studyfile.enqueue`` reads them without loading a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.config import TrialConfig
from search.studyfile.pruners import PrunerSpec
from spaces import ParamSpec


@dataclass(frozen=True)
class SamplerSpec:
    name: str = "tpe"
    seed: int | None = 0  # None: a different search each run
    n_startup_trials: int = 5  # random trials before TPE models the results


@dataclass(frozen=True)
class SplitSpec:
    val_fraction: float = 0.2
    seed: int = 0
    folds: int = 0  # K >= 2: python -m search.refit --folds splits all people into K folds; 0 = none


@dataclass(frozen=True)
class RefitSpec:
    """After the search, ``python -m search.run`` refits the ``top`` best trials on ``folds`` person
    folds (0: ``[split] folds``), or on up to ``max_folds`` where that fits, within ``time_share`` of the
    run's time budget (search/refitting/phase.py)."""

    enabled: bool = False
    top: int = 1
    folds: int = 0
    max_folds: int = 0  # > folds: the most folds, from this down to folds, whose group fits the time left
    time_share: float = 0.4  # of a run's time budget kept for the refit; the search gets the rest


@dataclass(frozen=True)
class StudySpec:
    name: str
    path: Path
    description: str = ""
    space: str = "standard"
    n_trials: int = 20  # finished (complete + pruned) trials the study aims for, over all workers
    timeout_s: float | None = None  # a run's time budget, from the command's start (search/engine/budget.py)
    keep_top: int = 8  # checkpoints kept for trials that could still enter an ensemble
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    refit: RefitSpec = field(default_factory=RefitSpec)
    fixed: dict[str, Any] = field(default_factory=dict)
    params: dict[str, ParamSpec] = field(default_factory=dict)
    profile: str = "cpu"
    enqueue: tuple[dict[str, Any], ...] = ()  # Optuna params of the profile's known-good trials

    @property
    def refit_folds(self) -> int:
        """K of the refit phase's fold groups: ``[refit] folds``, else ``[split] folds``."""
        return self.refit.folds or self.split.folds

    @property
    def refit_fold_choices(self) -> tuple[int, ...]:
        """The K the refit phase may train, most first: ``[refit] max_folds`` down to ``refit_folds``."""
        k = self.refit_folds
        return tuple(range(max(self.refit.max_folds, k), k - 1, -1))

    def base_config(self) -> TrialConfig:
        return TrialConfig.from_dict(self.fixed)

    def choices(self, name: str) -> list[Any]:
        """Every value ``name`` can take in this study (searched choices or the fixed value)."""
        if name in self.params:
            return list(self.params[name].values())
        return [self.fixed.get(name, getattr(TrialConfig(), name))]
