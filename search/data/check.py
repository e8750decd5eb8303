"""Validation of the on-disk layout: train.csv rows, person folders, photos, decodability.

Every check collects all the problems of its kind and raises one :class:`DataError` that
lists the first few, so a user fixes a batch at a time instead of one per run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed
from PIL import Image
from tqdm.auto import tqdm

from search.data.errors import DataError
from search.data.labels import EXTENSIONS, GENDER_NAMES, PHOTOS

log = logging.getLogger(__name__)

TRAIN_COLUMNS = ("id", "gender", "race", "age", "path")
MAX_LISTED = 5  # problems quoted in one message
MIN_AGE, MAX_AGE = 0, 120  # exclusive bounds


def data_error(what: str, problems: Sequence[str], todo: str) -> DataError:
    """One error listing up to MAX_LISTED ``problems`` about ``what`` and what to do."""
    shown = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    n = len(problems)
    return DataError(f"{what}: {n} problem{'s' if n != 1 else ''}:\n{shown}{more}\n{todo}")


def visible(name: str) -> bool:
    """False for dot files and macOS ``._*`` junk, which are ignored everywhere."""
    return not name.startswith(".")


def read_csv_strict(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV as strings (ids keep their leading zeros); ``line`` holds file line numbers."""
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist; check the data folder you passed.")
    try:
        table = pd.read_csv(
            path, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig"
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{what} {path} is empty; it needs a header row and one row per entry.") from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{what} {path} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}, e.g. "
            "Latin-1 or a spreadsheet's export); save it as UTF-8 (CSV UTF-8) and run again."
        ) from exc
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"{what} {path} is not a readable CSV: {exc}") from exc
    table.columns = [str(c).strip() for c in table.columns]
    table["line"] = range(2, len(table) + 2)  # header is line 1
    blank = table.drop(columns="line").apply(lambda col: col.str.strip() == "").all(axis=1)
    return table.loc[~blank].reset_index(drop=True)


def require_columns(table: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        have = [c for c in table.columns if c != "line"]
        raise DataError(
            f"{path} lacks column(s) {', '.join(map(repr, missing))} (it has {have}); "
            f"the header must hold {', '.join(columns)}."
        )


def _parse_age(raw: str) -> int | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    if not value.is_integer():
        return None
    return int(value)


def parse_people(csv_path: Path) -> pd.DataFrame:
    """train.csv -> one row per person (``person`` = folder, ``id``, ``gender``, ``race``, ``age``)."""
    table = read_csv_strict(csv_path, "train.csv")
    require_columns(table, TRAIN_COLUMNS, csv_path)
    if table.empty:
        raise DataError(f"{csv_path} has a header but no people; add one row per person folder.")
    problems: list[str] = []
    rows: list[dict[str, object]] = []
    first_line: dict[str, int] = {}
    for rec in table.to_dict("records"):
        line = int(rec["line"])
        where = f"line {line}"
        folder, pid = rec["path"].strip(), rec["id"].strip()
        gender_raw, age_raw = rec["gender"].strip(), rec["age"].strip()
        if not folder:
            problems.append(f"{where}: empty path (it must name the person's folder under images/)")
        elif folder in (".", "..") or "/" in folder or "\\" in folder:
            problems.append(f"{where}: path {folder!r} must be a plain folder name under images/")
        elif folder in first_line:
            problems.append(
                f"{where}: path {folder!r} repeats line {first_line[folder]} (one row per person)"
            )
        else:
            first_line[folder] = line
        if not pid:
            problems.append(f"{where}: empty id")
        gender = gender_raw.lower()
        if gender not in GENDER_NAMES:
            problems.append(f"{where}: unknown gender {gender_raw!r} (expected 'male' or 'female')")
        age = _parse_age(age_raw)
        if age is None:
            problems.append(f"{where}: age {age_raw!r} is not a whole number")
        elif not MIN_AGE < age < MAX_AGE:
            problems.append(f"{where}: age {age} is out of range ({MIN_AGE + 1}..{MAX_AGE - 1})")
        rows.append(
            {
                "person": folder,
                "id": pid,
                "gender": GENDER_NAMES.index(gender) if gender in GENDER_NAMES else -1,
                "race": rec["race"].strip(),
                "age": age if age is not None else -1,
                "csv_line": line,
            }
        )
    if problems:
        raise data_error(f"{csv_path}", problems, "Fix these rows of train.csv and run again.")
    _warn_repeated_ids(rows, csv_path)
    people = pd.DataFrame(rows).sort_values("person", kind="stable").reset_index(drop=True)
    people["gender"] = people["gender"].astype("int64")
    people["age"] = people["age"].astype("int64")
    people["relabeled"] = False
    return people


def _warn_repeated_ids(rows: Sequence[dict[str, object]], csv_path: Path) -> None:
    """One warning for ids on several rows: the real data has one such id (two folders, two ages);
    each folder stays a person of its own in the split, which leaks if they are one person."""
    lines: dict[object, list[object]] = {}
    for row in rows:
        lines.setdefault(row["id"], []).append(row["csv_line"])
    repeated = {pid: where for pid, where in lines.items() if len(where) > 1}
    if repeated:
        shown = "; ".join(
            f"id {pid!r} on lines {', '.join(map(str, where))}" for pid, where in list(repeated.items())[:5]
        )
        log.warning(
            "%s: %d id(s) appear on several rows (%s%s); each row's folder is split as a person of its own; "
            "if two rows are one person, merge their folders into one row.",
            csv_path, len(repeated), shown, "; ..." if len(repeated) > 5 else "",
        )


def list_folders(images_dir: Path) -> list[str]:
    """Visible sub-folders of ``images_dir``, sorted."""
    if not images_dir.is_dir():
        raise DataError(f"image folder {images_dir} does not exist; it must sit beside train.csv.")
    folders = []
    for entry in os.scandir(images_dir):
        if not visible(entry.name):
            continue
        if entry.is_dir():
            folders.append(entry.name)
        else:
            log.warning("ignoring %s: a file, not a person folder", entry.path)
    return sorted(folders)


def match_folders(people: pd.DataFrame, folders: Sequence[str], csv_path: Path, images_dir: Path) -> None:
    """Every CSV row has its folder and every folder has its CSV row."""
    on_disk = set(folders)
    problems = [
        f"train.csv line {line}: folder {images_dir / folder} does not exist"
        for folder, line in zip(people["person"], people["csv_line"], strict=True)
        if folder not in on_disk
    ]
    listed = set(people["person"])
    problems += [f"folder {images_dir / f} has no row in train.csv" for f in folders if f not in listed]
    if problems:
        raise data_error(
            f"{csv_path} and {images_dir} disagree",
            problems,
            "Each person is one row of train.csv and one folder of images/: add the missing one "
            "or remove the extra one.",
        )


def find_photos(images_dir: Path, folders: Sequence[str]) -> dict[str, dict[str, Path]]:
    """``{folder: {photo: file}}`` with exactly one file for each of the seven photos."""
    found: dict[str, dict[str, Path]] = {}
    problems: list[str] = []
    for folder in folders:
        base = images_dir / folder
        photos: dict[str, list[str]] = {p: [] for p in PHOTOS}
        names = sorted(n for n in os.listdir(base) if visible(n))
        for name in names:
            stem, ext = os.path.splitext(name)
            if stem.lower() in photos and ext.lower() in EXTENSIONS and (base / name).is_file():
                photos[stem.lower()].append(name)
        for photo, files in photos.items():
            if not files:
                problems.append(
                    f"{base}: missing photo {photo!r} (no {photo}{'/'.join(EXTENSIONS)}; "
                    f"the folder holds {names})"
                )
            elif len(files) > 1:
                problems.append(f"{base}: photo {photo!r} has {len(files)} files {files}")
        found[folder] = {p: base / f[0] for p, f in photos.items() if f}
    if problems:
        raise data_error(
            f"person folders under {images_dir}",
            problems,
            f"Every person needs exactly one file for each of {', '.join(PHOTOS)} "
            f"(extension {'/'.join(EXTENSIONS)}): add the missing photo or delete the extra file.",
        )
    return found


def _decode_problem(path: str) -> str | None:
    try:
        with Image.open(path) as im:
            # JPEG at 1/8 scale still runs the whole entropy-coded stream, so truncation and
            # corruption are caught at a fraction of a full decode's cost.
            im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        return f"{path}: {type(exc).__name__}: {exc}"
    return None


def check_decodable(paths: Sequence[str], n_jobs: int = -1) -> None:
    """Open every image; raise one error naming the files that do not decode."""
    jobs = Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator", batch_size=32)
    results = jobs(delayed(_decode_problem)(p) for p in paths)
    problems = [
        r
        for r in tqdm(results, total=len(paths), desc="checking images", unit="img", leave=False)
        if r is not None
    ]
    if problems:
        raise data_error(
            "images that cannot be decoded",
            problems,
            "Replace or re-export these files (JPEG or PNG), then run again.",
        )
