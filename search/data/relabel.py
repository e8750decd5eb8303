"""User-editable label fixes, applied before labelling.

A relabel file is a CSV with the header ``person,field,value,note``; lines whose first
non-blank character is ``#`` are comments, blank lines are skipped. One row is one fix:

``person``
    the person's folder name under ``train/images/`` (``000001_female_Asian_45``) or their
    ``id`` from train.csv (``000001``, ``001498-1``) when that id names exactly one folder.
``field`` and ``value``
    ``gender``                 ``male`` or ``female``: the person's true gender.
    ``age``                    a whole number 1..119: the person's true age.
    ``swap_incorrect_normal``  value empty (or ``true``/``yes``/``1``): the incorrect_mask and
                               normal photos are swapped, so each takes the other's mask state.
    ``mask:<photo>``           ``wear``, ``incorrect`` or ``not_wear`` (or 0/1/2): the mask state
                               actually shown on photo ``<photo>`` (mask1..mask5,
                               incorrect_mask, normal). Applied after a swap of the same person.
``note``
    free text, ignored (say why you made the fix). Quote it if it holds a comma.

A fix naming an unknown person, field or value, or the same (person, field) twice, is an
error naming the file and line: nothing is silently skipped. ``studies/relabel_example.csv``
holds the fixes almost every published list agrees on for the real data set.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from search.data.errors import DataError
from search.data.labels import GENDER_NAMES, MASK_NAMES, PHOTOS

COLUMNS = ("person", "field", "value", "note")
FIELDS = ("gender", "age", "swap_incorrect_normal", *(f"mask:{p}" for p in PHOTOS))
_TRUE = ("", "true", "yes", "1")


@dataclass(frozen=True)
class Fix:
    line: int  # line number in the relabel file, for messages
    person: str  # as written; resolved to a folder name by apply_relabel
    field: str
    value: int | bool  # gender 0/1, age, mask 0..2, or True for a swap
    note: str = ""


def _parse_value(field: str, raw: str) -> int | bool | None:
    v = raw.strip().lower()
    if field == "gender":
        return GENDER_NAMES.index(v) if v in GENDER_NAMES else None
    if field == "age":
        try:
            age = int(v)
        except ValueError:
            return None
        return age if 0 < age < 120 else None
    if field == "swap_incorrect_normal":
        return True if v in _TRUE else None
    if v in MASK_NAMES:
        return MASK_NAMES.index(v)
    return int(v) if v in ("0", "1", "2") else None


_EXPECTED = {
    "gender": "'male' or 'female'",
    "age": "a whole number from 1 to 119",
    "swap_incorrect_normal": "empty (or true/yes/1)",
    "mask": "'wear', 'incorrect' or 'not_wear' (or 0/1/2)",
}


def read_relabel(path: Path | str) -> list[Fix]:
    """Parse and check a relabel file (persons are checked later, against the data)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"relabel file {path} does not exist; pass an existing CSV or no relabel file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"relabel file {path} cannot be read as UTF-8 text: {exc}") from exc
    kept, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            kept.append(line)
            lines.append(number)
    if not kept:
        raise DataError(f"relabel file {path} has no header; its first line must be: {','.join(COLUMNS)}")
    try:
        table = pd.read_csv(io.StringIO("\n".join(kept)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"relabel file {path} is not a valid CSV: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in COLUMNS[:3] if c not in table.columns]
    if missing:
        raise DataError(
            f"relabel file {path} (line {lines[0]}) lacks column(s) {missing}; "
            f"the header must be: {','.join(COLUMNS)}"
        )
    fixes: list[Fix] = []
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(table.itertuples(index=False)):
        line = lines[i + 1] if i + 1 < len(lines) else lines[-1]
        rec = row._asdict()
        person, field = rec["person"].strip(), rec["field"].strip().lower()
        where = f"relabel file {path}, line {line}"
        if not person:
            raise DataError(f"{where}: the person is empty; write a folder name or an id from train.csv.")
        if field not in FIELDS:
            raise DataError(f"{where}: unknown field {rec['field']!r}; valid fields are {', '.join(FIELDS)}.")
        value = _parse_value(field, rec["value"])
        if value is None:
            expected = _EXPECTED["mask" if field.startswith("mask:") else field]
            raise DataError(f"{where}: value {rec['value']!r} is not valid for {field}; expected {expected}.")
        key = (person, field)
        if key in seen:
            raise DataError(
                f"{where}: a second {field} fix for {person!r} (the first is on line {seen[key]}); keep one."
            )
        seen[key] = line
        fixes.append(Fix(line, person, field, value, str(rec.get("note", "")).strip()))
    return fixes


def _resolve(fix: Fix, people: pd.DataFrame, path: Path | str) -> str:
    folders = set(people["person"])
    if fix.person in folders:
        return fix.person
    matches = people.loc[people["id"] == fix.person, "person"].tolist()
    if len(matches) == 1:
        return str(matches[0])
    where = f"relabel file {path}, line {fix.line}"
    if matches:
        raise DataError(
            f"{where}: id {fix.person!r} names several folders ({', '.join(sorted(matches))}); "
            "write the folder name instead."
        )
    raise DataError(
        f"{where}: unknown person {fix.person!r} (no such folder or id in train.csv); "
        "fix the name or delete the line."
    )


def apply_relabel(
    fixes: list[Fix], people: pd.DataFrame, images: pd.DataFrame, path: Path | str
) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[str, str, int]]]:
    """Apply ``fixes`` to copies of ``people`` (gender, age) and ``images`` (mask).

    Returns the fixed tables and the applied fixes as ``(folder, field, value)`` rows, which
    go into the data fingerprint. Raises :class:`DataError` on an unknown person, or on two
    fixes of one field that reach the same folder through its id and its name.
    """
    people, images = people.copy(), images.copy()
    resolved = [(_resolve(f, people, path), f) for f in fixes]
    seen: dict[tuple[str, str], int] = {}
    for folder, fix in resolved:
        if (folder, fix.field) in seen:
            raise DataError(
                f"relabel file {path}, line {fix.line}: a second {fix.field} fix for {folder!r} "
                f"(the first is on line {seen[(folder, fix.field)]}); keep one."
            )
        seen[(folder, fix.field)] = fix.line
    row_of = {p: i for i, p in enumerate(people["person"])}
    # swaps first, so an explicit mask:<photo> fix of the same person wins
    ordered = sorted(resolved, key=lambda rf: (not rf[1].field.startswith("swap"), rf[1].line))
    applied: list[tuple[str, str, int]] = []
    for folder, fix in ordered:
        prow = people.index[row_of[folder]]
        people.loc[prow, "relabeled"] = True
        mine = images["person"] == folder
        if fix.field in ("gender", "age"):
            people.loc[prow, fix.field] = int(fix.value)
        elif fix.field == "swap_incorrect_normal":
            inc = mine & (images["photo"] == "incorrect_mask")
            nor = mine & (images["photo"] == "normal")
            a, b = images.loc[inc, "mask"].to_numpy(), images.loc[nor, "mask"].to_numpy()
            images.loc[inc, "mask"], images.loc[nor, "mask"] = b, a
        else:
            photo = fix.field.split(":", 1)[1]
            images.loc[mine & (images["photo"] == photo), "mask"] = int(fix.value)
        applied.append((folder, fix.field, int(fix.value)))
    return people, images, sorted(applied)


__all__ = ["COLUMNS", "FIELDS", "Fix", "apply_relabel", "read_relabel"]
