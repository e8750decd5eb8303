"""Study files: ``studies/<name>.toml`` -> a frozen, validated ``StudySpec``.

A study file names its search space, the values it keeps fixed, the sampler, the pruner,
the validation split, the trial budget and the ensemble's retention, with ``[profiles.cpu]``
and ``[profiles.gpu]`` tables that override ``fixed``/``params``/``n_trials``/``timeout_s`` for the
device the study runs on. Unknown keys are errors naming the key and the file. ``timeout_s`` is a
run's time budget in seconds, counted from the command's start (search/budget.py).

    [study]           description, space, n_trials, timeout_s, keep_top
    [sampler]         name (tpe | random), seed, n_startup_trials
    [pruner]          name (hyperband | successive_halving | median | percentile | none), signal
                      (macro_f1 | val_loss), min_resource, reduction_factor, n_startup_trials, percentile,
                      min_complete
    [split]           val_fraction, seed
    [fixed]           TrialConfig fields held constant
    [params]          searched TrialConfig fields: a list = categorical, {low, high, log, step} = range
    [profiles.cpu]    n_trials, timeout_s, fixed, params   (merged over the tables above)
    [profiles.gpu]    n_trials, timeout_s, fixed, params
    [[profiles.gpu.enqueue]]  a known-good trial run before sampling, on this profile only
                      (TrialConfig names; see search/enqueue.py)
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runners.config import TrialConfig
from search.enqueue import enqueue_params
from search.studycheck import StudyFileError, check_at_least, check_config_value, check_fields, type_problem
from spaces import ParamSpec, list_spaces, parse_param

__all__ = ["StudyFileError", "StudySpec", "list_studies", "load_study", "study_path"]

STUDIES_DIR = Path(__file__).resolve().parent.parent / "studies"
PROFILES = ("cpu", "gpu")
SAMPLERS = ("tpe", "random")
PRUNERS = ("hyperband", "successive_halving", "median", "percentile", "none")
# What a trial reports after each epoch, for its pruner to compare: its validation macro-F1, or its
# validation cross-entropy (reported negated, so that higher is better in a study that maximises F1).
PRUNING_SIGNALS = ("macro_f1", "val_loss")


@dataclass(frozen=True)
class SamplerSpec:
    name: str = "tpe"
    seed: int | None = 0  # None: a different search each run
    n_startup_trials: int = 5  # random trials before TPE models the results


@dataclass(frozen=True)
class PrunerSpec:
    name: str = "hyperband"
    signal: str = "macro_f1"  # what trials report each epoch: one of PRUNING_SIGNALS
    min_resource: int = 1  # epochs every trial gets before it can be pruned
    reduction_factor: int = 3  # hyperband, successive_halving: 1 in this many goes on at each rung
    n_startup_trials: int = 2  # median, percentile: complete trials needed before they prune anything
    percentile: float = 50.0  # percentile: a trial goes on while in the top this-% of complete trials at its epoch
    min_complete: int = 0  # no trial is stopped while fewer than this many trials of the study have completed


@dataclass(frozen=True)
class SplitSpec:
    val_fraction: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class StudySpec:
    name: str
    path: Path
    description: str = ""
    space: str = "standard"
    n_trials: int = 20  # finished (complete + pruned) trials the study aims for, over all workers
    timeout_s: float | None = None  # a run's time budget, from the command's start (search/budget.py)
    keep_top: int = 8  # checkpoints kept for trials that could still enter an ensemble
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    fixed: dict[str, Any] = field(default_factory=dict)
    params: dict[str, ParamSpec] = field(default_factory=dict)
    profile: str = "cpu"
    enqueue: tuple[dict[str, Any], ...] = ()  # Optuna params of the profile's known-good trials

    def base_config(self) -> TrialConfig:
        return TrialConfig.from_dict(self.fixed)

    def choices(self, name: str) -> list[Any]:
        """Every value ``name`` can take in this study (searched choices or the fixed value)."""
        if name in self.params:
            return list(self.params[name].values())
        return [self.fixed.get(name, getattr(TrialConfig(), name))]


def study_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        return path
    candidate = STUDIES_DIR / f"{name_or_path}.toml"
    if candidate.exists():
        return candidate
    raise StudyFileError(
        f"No study named {str(name_or_path)!r}: expected {candidate}. "
        f"Available studies: {', '.join(list_studies())}."
    )


def list_studies() -> list[str]:
    return sorted(p.stem for p in STUDIES_DIR.glob("*.toml"))


def load_study(name_or_path: str | Path, profile: str = "cpu") -> StudySpec:
    if profile not in PROFILES:
        raise StudyFileError(f"profile must be one of {list(PROFILES)} but got {profile!r}.")
    path = study_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML ({exc}).") from exc
    spec = _parse(raw, path, profile)
    for other in PROFILES:  # a mistake in another profile's known-good trials shows on any load
        if other != profile and "enqueue" in raw.get("profiles", {}).get(other, {}):
            _parse(raw, path, other)
    return spec


def _parse(raw: dict[str, Any], path: Path, profile: str) -> StudySpec:
    _reject_unknown(raw, {"study", "sampler", "pruner", "split", "fixed", "params", "profiles"}, path, "")
    study = dict(raw.get("study", {}))
    _reject_unknown(study, {"description", "space", "n_trials", "timeout_s", "keep_top"}, path, "study")
    profiles = raw.get("profiles", {})
    _reject_unknown(profiles, set(PROFILES), path, "profiles")
    for pname, ptable in profiles.items():
        _reject_unknown(ptable, {"n_trials", "timeout_s", "fixed", "params", "enqueue"}, path, f"profiles.{pname}")
    chosen = profiles.get(profile, {})

    fixed = {**raw.get("fixed", {}), **chosen.get("fixed", {})}
    raw_params = {**raw.get("params", {}), **chosen.get("params", {})}
    config_keys = {f.name for f in dataclasses.fields(TrialConfig)}
    for section, table in (("fixed", fixed), ("params", raw_params)):
        for key in table:
            if key not in config_keys:
                raise StudyFileError(
                    f"{path}: unknown key {section}.{key}; it must be a TrialConfig field: "
                    f"{', '.join(sorted(config_keys))}."
                )
    params: dict[str, ParamSpec] = {}
    for key, value in raw_params.items():
        try:
            params[key] = parse_param(key, value)
        except ValueError as exc:
            raise StudyFileError(f"{path}: params.{key}: {exc}") from exc
    for key in set(params) & set(fixed):
        del fixed[key]  # a profile may search what the base table fixes

    for key, annotation in (("description", "str"), ("space", "str"), ("timeout_s", "float | None")):
        problem = type_problem(study.get(key), annotation if key == "timeout_s" else f"{annotation} | None")
        if problem:
            raise StudyFileError(f"{path}: study.{key} {problem}.")
    if study.get("timeout_s") is not None and study["timeout_s"] <= 0:
        raise StudyFileError(f"{path}: study.timeout_s must be a number of seconds > 0, got {study['timeout_s']!r}; "
                             "remove it to run until n_trials is reached.")
    space = study.get("space", "standard")
    if space not in list_spaces():
        raise StudyFileError(f"{path}: study.space {space!r} is unknown; valid spaces: {list_spaces()}.")
    spec = StudySpec(
        name=path.stem,
        path=path,
        description=str(study.get("description", "")),
        space=space,
        n_trials=_positive_int(chosen.get("n_trials", study.get("n_trials", 20)), path, "n_trials"),
        timeout_s=_seconds(chosen.get("timeout_s", study.get("timeout_s")), path, "timeout_s"),
        keep_top=_positive_int(study.get("keep_top", 8), path, "study.keep_top"),
        sampler=_dataclass_from(SamplerSpec, raw.get("sampler", {}), path, "sampler"),
        pruner=_dataclass_from(PrunerSpec, raw.get("pruner", {}), path, "pruner"),
        split=_dataclass_from(SplitSpec, raw.get("split", {}), path, "split"),
        fixed=fixed,
        params=params,
        profile=profile,
    )
    _check_values(spec, path, chosen)
    if spec.sampler.name not in SAMPLERS:
        raise StudyFileError(f"{path}: sampler.name must be one of {list(SAMPLERS)}, got {spec.sampler.name!r}.")
    check_pruner(spec.pruner, path)
    if not 0.0 < spec.split.val_fraction < 1.0:
        raise StudyFileError(f"{path}: split.val_fraction must be in (0, 1), got {spec.split.val_fraction}.")
    try:
        spec.base_config()
    except (TypeError, ValueError) as exc:
        raise StudyFileError(f"{path}: [fixed] does not make a valid trial config: {exc}") from exc
    return dataclasses.replace(spec, enqueue=_enqueue(chosen.get("enqueue", []), spec, path))


def _enqueue(tables: Any, spec: StudySpec, path: Path) -> tuple[dict[str, Any], ...]:
    where = f"profiles.{spec.profile}.enqueue"
    if not isinstance(tables, list):
        raise StudyFileError(f"{path}: {where} must be an array of tables ([[{where}]]), got {tables!r}.")
    try:
        return tuple(enqueue_params(table, spec, f"{where}[{i}]") for i, table in enumerate(tables))
    except ValueError as exc:
        raise StudyFileError(f"{path}: {exc}") from exc


def _check_values(spec: StudySpec, path: Path, chosen: dict[str, Any]) -> None:
    """Types and ranges of every value, and what [fixed] and [params] values name (StudyFileError)."""
    for obj, where in ((spec.sampler, "sampler"), (spec.pruner, "pruner"), (spec.split, "split")):
        check_fields(obj, path, where)
    check_at_least(spec.sampler.seed, 0, path, "sampler.seed")
    check_at_least(spec.sampler.n_startup_trials, 0, path, "sampler.n_startup_trials")
    check_at_least(spec.split.seed, 0, path, "split.seed")
    for name, value in spec.fixed.items():
        where = f"profiles.{spec.profile}.fixed" if name in chosen.get("fixed", {}) else "fixed"
        check_config_value(name, value, path, f"{where}.{name}")
    for name, param in spec.params.items():
        where = f"profiles.{spec.profile}.params" if name in chosen.get("params", {}) else "params"
        for value in param.values():
            check_config_value(name, value, path, f"{where}.{name}")


def check_pruner(pruner: PrunerSpec, source: Path | str) -> None:
    """Raise StudyFileError, naming ``source`` and the key, for settings the pruner cannot use."""
    if pruner.name not in PRUNERS:
        raise StudyFileError(f"{source}: pruner.name must be one of {list(PRUNERS)}, got {pruner.name!r}.")
    if pruner.signal not in PRUNING_SIGNALS:
        raise StudyFileError(f"{source}: pruner.signal must be one of {list(PRUNING_SIGNALS)}, got {pruner.signal!r}.")
    _positive_int(pruner.min_resource, source, "pruner.min_resource")
    if _positive_int(pruner.reduction_factor, source, "pruner.reduction_factor") < 2:
        raise StudyFileError(f"{source}: pruner.reduction_factor must be at least 2, got {pruner.reduction_factor}.")
    if not isinstance(pruner.n_startup_trials, int) or isinstance(pruner.n_startup_trials, bool) \
            or pruner.n_startup_trials < 0:
        raise StudyFileError(f"{source}: pruner.n_startup_trials must be a whole number >= 0, "
                             f"got {pruner.n_startup_trials!r}.")
    if not isinstance(pruner.min_complete, int) or isinstance(pruner.min_complete, bool) or pruner.min_complete < 0:
        raise StudyFileError(f"{source}: pruner.min_complete must be a whole number >= 0, got {pruner.min_complete!r}.")
    percentile = pruner.percentile
    if isinstance(percentile, bool) or not isinstance(percentile, int | float) or not 0.0 < percentile < 100.0:
        raise StudyFileError(f"{source}: pruner.percentile must be in (0, 100), got {pruner.percentile!r}.")


def _reject_unknown(table: Any, allowed: set[str], path: Path, where: str) -> None:
    if not isinstance(table, dict):
        raise StudyFileError(f"{path}: {where or 'the file'} must be a table, got {table!r}.")
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise StudyFileError(f"{path}: unknown key {name!r}; allowed here: {', '.join(sorted(allowed))}.")


def _dataclass_from(cls: type, table: dict[str, Any], path: Path, where: str) -> Any:
    _reject_unknown(table, {f.name for f in dataclasses.fields(cls)}, path, where)
    return cls(**table)


def _positive_int(value: Any, path: Path | str, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise StudyFileError(f"{path}: {key} must be a positive integer, got {value!r}.")
    return value


def _seconds(value: Any, path: Path, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise StudyFileError(f"{path}: {key} must be a positive number of seconds, got {value!r}.")
    return float(value)
