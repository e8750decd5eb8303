"""Complete validation of a study file's values, so nothing wrong in it is found after data is read.

Types (a quoted number, a float where a whole number goes), ranges, backbone names against
timm's registry, augmentation sets, crops and the training age cutoff (55 to 65). Every
problem raises ``StudyFileError`` with one line naming the file, the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from pathlib import Path
from typing import Any

AGE_CUTOFF_RANGE = (55, 65)  # training labels: "old" from this age; the canonical cutoff is 60

_KINDS = {
    "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)),
    "str": ("a quoted string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "None": ("absent", lambda v: v is None),
}


class StudyFileError(ValueError):
    """A study file that cannot be used; the message names the file and the key."""


def type_problem(value: Any, annotation: str) -> str | None:
    """None when ``value`` fits a dataclass field annotated ``annotation`` (e.g. ``"int | None"``),
    else what it must be and how to write it."""
    kinds = [k.strip() for k in annotation.split("|")]
    if any(k.startswith("dict") for k in kinds) and isinstance(value, dict):
        return None
    known = [k for k in kinds if k in _KINDS]
    if not known or any(_KINDS[k][1](value) for k in known):
        return None
    expected = " or ".join(_KINDS[k][0] for k in known if k != "None")
    hint = ""
    if isinstance(value, str) and _looks_numeric(value):
        hint = ": remove the quotes"
    elif "int" in known and "float" not in known and isinstance(value, float) and not isinstance(value, bool):
        hint = f": use a whole number such as {math.floor(value)}"
    return f"must be {expected}, got {value!r}{hint}"


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _file_error(path: Path | str, key: str, problem: str) -> StudyFileError:
    return StudyFileError(f"{path}: {key} {problem}{'' if problem.endswith('?') else '.'}")


def check_fields(obj: Any, path: Path | str, where: str) -> None:
    """Every field of the dataclass ``obj`` has a value of its annotated type."""
    for f in dataclasses.fields(obj):
        problem = type_problem(getattr(obj, f.name), str(f.type))
        if problem:
            raise _file_error(path, f"{where}.{f.name}", problem)


def check_at_least(value: Any, low: float, path: Path | str, key: str) -> None:
    if value is not None and value < low:
        raise _file_error(path, key, f"must be at least {low}, got {value!r}")


# Values that are only valid beside another field are checked with that field set to allow them;
# whether the two go together in a trial is the space's business (it asks them together).
_PARTNERS: dict[str, dict[str, Any]] = {"augment_scope": {"oversample": "old"}}


def check_config_value(name: str, value: Any, path: Path | str, key: str) -> None:
    """One TrialConfig value from [fixed] or a [params] choice: type, then what it may name."""
    from runners.config import TrialConfig

    fields = {f.name: str(f.type) for f in dataclasses.fields(TrialConfig)}
    problem = type_problem(value, fields[name])
    if problem:
        raise _file_error(path, key, problem)
    check = _DOMAIN.get(name)
    if check is not None:
        problem = check(value)
        if problem:
            raise _file_error(path, key, problem)
    try:
        TrialConfig(**_PARTNERS.get(name, {})).replace(**{name: value})
    except (TypeError, ValueError) as exc:
        raise _file_error(path, key, f"is not usable: {exc}") from exc


def _backbone(name: str) -> str | None:
    import timm

    if name.startswith(("hf-hub:", "hf_hub:")) or timm.is_model(name):
        return None
    close = difflib.get_close_matches(name, timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    return f"names no timm model: {name!r} is not in timm's registry{hint}"


def _augment(name: str) -> str | None:
    from runners.augmentations import list_augment_sets

    sets = list_augment_sets()
    return None if name in sets else f"names no augmentation set: {name!r}; use one of {', '.join(sets)}"


def _crop(name: str) -> str | None:
    from search.data.cache import crop_problem

    return crop_problem(name)


def _age_cutoff(value: int) -> str | None:
    low, high = AGE_CUTOFF_RANGE
    if low <= value <= high:
        return None
    return f"must be an age from {low} to {high} (old is >= 60 in the labels), got {value}"


_DOMAIN = {"backbone": _backbone, "augment": _augment, "crop": _crop, "age_cutoff": _age_cutoff}
