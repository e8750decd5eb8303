"""Study files: ``studies/<name>.toml`` -> a frozen, validated ``StudySpec``.

A study file names its search space, the values it keeps fixed, the sampler, the pruner,
the validation split, the trial budget and the ensemble's retention, with ``[profiles.cpu]``
and ``[profiles.gpu]`` tables that override ``fixed``/``params``/``n_trials``/``timeout_s`` for the
device the study runs on. Unknown keys are errors naming the key and the file. ``timeout_s`` is a
run's time budget in seconds, counted from the command's start (search/engine/budget.py).

The tables and the keys each takes are TABLE_KEYS (docs/studies.md's table is tested against it).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import tomllib
from pathlib import Path
from typing import Any

from runners.config import TrialConfig
from search.studyfile.enqueue import enqueue_params
from search.studyfile.pruners import PrunerSpec, check_pruner
from search.studyfile.samplers import SAMPLERS
from search.studyfile.validate import StudyFileError, check_at_least, check_config_value, check_fields, type_problem
from search.studyfile.spec import RefitSpec, SamplerSpec, SplitSpec, StudySpec
from spaces import Categorical, ParamSpec, list_spaces, parse_param

__all__ = ["StudyFileError", "StudySpec", "cache_sizes", "list_studies", "load_study_spec", "study_path"]

log = logging.getLogger(__name__)

STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"
PROFILES = ("cpu", "gpu")
# Every table of a study file and the keys it takes; the parser refuses any other key.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "": ("study", "sampler", "pruner", "split", "refit", "fixed", "params", "profiles"),
    "study": ("description", "space", "n_trials", "timeout_s", "keep_top"),
    "sampler": tuple(f.name for f in dataclasses.fields(SamplerSpec)),
    "pruner": tuple(f.name for f in dataclasses.fields(PrunerSpec)),
    "split": tuple(f.name for f in dataclasses.fields(SplitSpec)),
    "refit": tuple(f.name for f in dataclasses.fields(RefitSpec)),
    "profiles": PROFILES,
    "profiles.<profile>": ("n_trials", "timeout_s", "fixed", "params", "refit", "enqueue"),
}


def study_path(name_or_path: str | Path) -> Path:
    """The file of a study name (``studies/<name>.toml``) or of a .toml path; StudyFileError naming
    what was given when there is none (a .toml path is never looked up with .toml added again)."""
    path = Path(name_or_path)
    available = f"Available studies: {', '.join(list_studies())}."
    if path.suffix != ".toml" and (STUDIES_DIR / f"{name_or_path}.toml").is_file():
        return STUDIES_DIR / f"{name_or_path}.toml"
    if path.is_dir():
        raise StudyFileError(f"--study {str(name_or_path)!r} is a folder; name a study file (.toml) or a study "
                             f"of {STUDIES_DIR}. {available}")
    if path.suffix != ".toml":
        raise StudyFileError(f"No study named {str(name_or_path)!r}: expected {STUDIES_DIR / f'{name_or_path}.toml'}. "
                             f"{available}")
    if path.exists():  # a file, or a device such as /dev/null (then it reads as empty)
        return path
    if path.parent == Path(".") and (STUDIES_DIR / path.name).is_file():
        return STUDIES_DIR / path.name
    raise StudyFileError(f"No study file {str(name_or_path)!r}: {path.absolute()} does not exist. {available}")


def list_studies() -> list[str]:
    return sorted(p.stem for p in STUDIES_DIR.glob("*.toml"))


def load_study_spec(name_or_path: str | Path, profile: str = "cpu") -> StudySpec:
    """The study file ``studies/<name>.toml`` (or a .toml path) for ``profile``, validated."""
    if profile not in PROFILES:
        raise StudyFileError(f"profile must be one of {list(PROFILES)} but got {profile!r}.")
    path = study_path(name_or_path)
    try:
        text = path.read_bytes().decode("utf-8")
        raw = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise StudyFileError(f"{path}: not a text study file (byte {exc.start} is not UTF-8); "
                             "pass a TOML study file such as studies/smoke.toml.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML ({exc}).") from exc
    except OSError as exc:
        raise StudyFileError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    if not raw:
        raise StudyFileError(f"{path} is empty (no table, no key); a study file needs at least [study] and "
                             "[params] (see studies/smoke.toml).")
    spec = _parse(raw, path, profile)
    for other in PROFILES:  # a mistake in another profile's known-good trials shows on any load
        if other != profile and "enqueue" in raw.get("profiles", {}).get(other, {}):
            _parse(raw, path, other)
    return spec


def _parse(raw: dict[str, Any], path: Path, profile: str) -> StudySpec:
    _reject_unknown(raw, set(TABLE_KEYS[""]), path, "")
    study = dict(raw.get("study", {}))
    _reject_unknown(study, set(TABLE_KEYS["study"]), path, "study")
    profiles = raw.get("profiles", {})
    _reject_unknown(profiles, set(TABLE_KEYS["profiles"]), path, "profiles")
    for pname, ptable in profiles.items():
        _reject_unknown(ptable, set(TABLE_KEYS["profiles.<profile>"]), path, f"profiles.{pname}")
    chosen = profiles.get(profile, {})

    _reject_both(raw, path, "")
    _reject_both(chosen, path, f"profiles.{profile}.")
    # a profile's table overrides the base tables: its params search what [fixed] holds, its fixed
    # holds what [params] searches
    base_fixed = {k: v for k, v in raw.get("fixed", {}).items() if k not in chosen.get("params", {})}
    base_params = {k: v for k, v in raw.get("params", {}).items() if k not in chosen.get("fixed", {})}
    fixed = {**base_fixed, **chosen.get("fixed", {})}
    raw_params = {**base_params, **chosen.get("params", {})}
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
        refit=_refit(raw, chosen, path, profile),
        fixed=fixed,
        params=params,
        profile=profile,
    )
    _check_values(spec, path, chosen)
    if spec.sampler.name not in SAMPLERS:
        raise StudyFileError(f"{path}: sampler.name must be one of {SAMPLERS.names()}, got {spec.sampler.name!r}.")
    check_pruner(spec.pruner, path)
    if spec.refit.enabled and spec.refit_folds < 2:
        raise StudyFileError(f"{path}: [refit] is enabled but names no folds: set refit.folds (or split.folds) "
                             "to K >= 2, or enabled = false.")
    if spec.refit.max_folds and spec.refit.max_folds < max(2, spec.refit_folds):
        raise StudyFileError(f"{path}: refit.max_folds must be 0 (folds only) or at least the refit's folds "
                             f"({spec.refit_folds}), got {spec.refit.max_folds!r}.")
    if not 0.0 < spec.split.val_fraction < 1.0:
        raise StudyFileError(f"{path}: split.val_fraction must be in (0, 1), got {spec.split.val_fraction}.")
    try:
        spec.base_config()
    except (TypeError, ValueError) as exc:
        raise StudyFileError(f"{path}: [fixed] does not make a valid trial config: {exc}") from exc
    return dataclasses.replace(spec, enqueue=_enqueue(chosen.get("enqueue", []), spec, path))


def _refit(raw: dict[str, Any], chosen: dict[str, Any], path: Path, profile: str) -> RefitSpec:
    """``[refit]`` with the profile's ``[profiles.<profile>.refit]`` merged over it, checked."""
    base, over = raw.get("refit", {}), chosen.get("refit", {})
    where = f"profiles.{profile}.refit"
    _reject_unknown(base, {f.name for f in dataclasses.fields(RefitSpec)}, path, "refit")
    _reject_unknown(over, {f.name for f in dataclasses.fields(RefitSpec)}, path, where)
    spec = RefitSpec(**{**base, **over})
    for f in dataclasses.fields(RefitSpec):
        key = f"{where if f.name in over else 'refit'}.{f.name}"
        problem = type_problem(getattr(spec, f.name), str(f.type))
        if problem:
            raise StudyFileError(f"{path}: {key} {problem}.")

    def key(name: str) -> str:
        return f"{where if name in over else 'refit'}.{name}"

    if spec.top < 1:
        raise StudyFileError(f"{path}: {key('top')} must be at least 1 (trials to refit), got {spec.top!r}.")
    if spec.folds < 0 or spec.folds == 1:
        raise StudyFileError(f"{path}: {key('folds')} must be 0 ([split] folds) or >= 2, got {spec.folds!r}.")
    if not 0.0 < spec.time_share < 1.0:
        raise StudyFileError(
            f"{path}: {key('time_share')} must be a share of the run's time budget between 0 and 1 "
            f"(0.4: 40 % for the refit), got {spec.time_share!r}."
        )
    return spec


def _reject_both(table: dict[str, Any], path: Path, where: str) -> None:
    """A key in both [fixed] and [params] of one table: which one was meant cannot be told."""
    fixed, params = table.get("fixed", {}), table.get("params", {})
    if not isinstance(fixed, dict) or not isinstance(params, dict):
        return  # _reject_unknown names the table that is not a table
    both = sorted(set(fixed) & set(params))
    if both:
        raise StudyFileError(
            f"{path}: {', '.join(both)} is in both [{where}fixed] and [{where}params]; keep it in one of them "
            "(fixed to hold it constant, params to search it)."
        )


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
    for obj, where in ((spec.sampler, "sampler"), (spec.split, "split")):
        check_fields(obj, path, where)
    check_at_least(spec.sampler.seed, 0, path, "sampler.seed")
    check_at_least(spec.sampler.n_startup_trials, 0, path, "sampler.n_startup_trials")
    check_at_least(spec.split.seed, 0, path, "split.seed")
    if spec.split.folds < 0 or spec.split.folds == 1:
        raise StudyFileError(f"{path}: split.folds must be 0 (no folds) or >= 2, got {spec.split.folds!r}.")
    for name, value in spec.fixed.items():
        where = f"profiles.{spec.profile}.fixed" if name in chosen.get("fixed", {}) else "fixed"
        check_config_value(name, value, path, f"{where}.{name}")
    for name, param in spec.params.items():
        where = f"profiles.{spec.profile}.params" if name in chosen.get("params", {}) else "params"
        for value in param.values():
            check_config_value(name, value, path, f"{where}.{name}")


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


def cache_sizes(spec: StudySpec) -> list[tuple[int, int, str]]:
    """Every (height, width, crop) the study's trials can ask for; empty if one is a range."""
    values: dict[str, list[Any]] = {}
    for key in ("height", "width", "crop"):
        if key in spec.params and not isinstance(spec.params[key], Categorical):
            log.info(
                "%s is searched over a range: each size's image cache is built by the first trial using it",
                key,
            )
            return []
        values[key] = spec.choices(key)
    return [
        (int(h), int(w), str(c))
        for h, w, c in itertools.product(values["height"], values["width"], values["crop"])
    ]
