"""Person-level train/validation splits, stratified by the person's canonical class.

People are sorted by folder name before splitting, so a split depends only on the set of
people and the seed, never on the order of files on disk or rows in train.csv. Mask state is
the same for every person (5:1:1 photos), so the stratum is gender x canonical age band.
A :class:`PersonSplit` is plain data: the lead stores ``to_dict()`` with the study so every
trial and every resumed run validates on the same people.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.model_selection import StratifiedKFold, train_test_split

from search.data.errors import DataError
from search.data.layout import TrainData

log = logging.getLogger(__name__)

SPLIT_FORMAT = 1


@dataclass(frozen=True)
class PersonSplit:
    train_people: tuple[str, ...]  # sorted folder names
    val_people: tuple[str, ...]  # sorted folder names
    seed: int
    method: str  # "holdout:0.2" or "kfold:2/5" (fold index / number of folds)

    def __post_init__(self) -> None:
        both = set(self.train_people) & set(self.val_people)
        if both:
            raise DataError(
                f"split {self.method!r} puts {len(both)} people on both sides, e.g. {sorted(both)[:3]}; "
                "make a new split."
            )
        if not self.val_people:
            raise DataError(f"split {self.method!r} has no validation people; make a new split.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "train_people": list(self.train_people),
            "val_people": list(self.val_people),
            "seed": self.seed,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PersonSplit:
        keys = {"format", "train_people", "val_people", "seed", "method"}
        if not isinstance(d, dict) or set(d) != keys:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise DataError(f"a stored split must have exactly the keys {sorted(keys)} but has {got}.")
        if d["format"] != SPLIT_FORMAT:
            raise DataError(f"stored split format {d['format']!r} is not {SPLIT_FORMAT}; make a new split.")
        return cls(
            tuple(sorted(map(str, d["train_people"]))),
            tuple(sorted(map(str, d["val_people"]))),
            int(d["seed"]),
            str(d["method"]),
        )

    def indices(self, data: TrainData) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Image row numbers of ``data`` on the train and validation sides."""
        known = set(data.people["person"])
        unknown = sorted((set(self.train_people) | set(self.val_people)) - known)
        if unknown:
            raise DataError(
                f"split {self.method!r} names {len(unknown)} people not in {data.root}, e.g. {unknown[:3]}; "
                "the data changed since the split was made: use the data it was made on, or a new study."
            )
        unassigned = len(known) - len(self.train_people) - len(self.val_people)
        if unassigned:
            log.warning("%d people of %s are in neither side of split %r", unassigned, data.root, self.method)
        person = data.images["person"]
        train = np.flatnonzero(person.isin(self.train_people).to_numpy()).astype(np.int64)
        val = np.flatnonzero(person.isin(self.val_people).to_numpy()).astype(np.int64)
        return train, val


def _strata(data: TrainData) -> tuple[list[str], npt.NDArray[np.int64]]:
    order = np.argsort(data.people["person"].to_numpy(dtype=str), kind="stable")
    people = data.people["person"].to_numpy(dtype=str)[order].tolist()
    classes = data.person_classes()[order]
    return people, classes


def _mergeable(classes: npt.NDArray[np.int64], minimum: int) -> npt.NDArray[np.int64]:
    """Fold strata smaller than ``minimum`` into the largest one, so sklearn can stratify."""
    counts = Counter(classes.tolist())
    small = [c for c, n in counts.items() if n < minimum]
    if not small:
        return classes
    largest = max(counts, key=lambda c: (counts[c], -c))
    log.warning(
        "classes %s have fewer than %d people; they are stratified together with %d", small, minimum, largest
    )
    return np.where(np.isin(classes, small), largest, classes)


def split_people(data: TrainData, val_fraction: float = 0.2, seed: int = 0) -> PersonSplit:
    """One stratified, seeded holdout split of people."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive) but got {val_fraction}.")
    people, classes = _strata(data)
    try:
        train, val = train_test_split(
            people, test_size=val_fraction, random_state=seed, stratify=_mergeable(classes, 2)
        )
    except ValueError as exc:
        raise DataError(
            f"cannot split {len(people)} people of {data.root} with val_fraction={val_fraction}: {exc}. "
            "Use more people or a larger val_fraction."
        ) from exc
    return PersonSplit(tuple(sorted(train)), tuple(sorted(val)), seed, f"holdout:{val_fraction:g}")


def kfold_people(data: TrainData, n_splits: int = 5, seed: int = 0) -> list[PersonSplit]:
    """Stratified K-fold over people (one row per person, so folds are person-disjoint)."""
    if isinstance(n_splits, bool) or int(n_splits) != n_splits or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2 but got {n_splits!r}.")
    people, classes = _strata(data)
    if len(people) < n_splits:
        raise DataError(
            f"cannot make {n_splits} folds of {len(people)} people in {data.root}; use fewer folds."
        )
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    arr = np.asarray(people)
    out = []
    for k, (tr, va) in enumerate(folds.split(arr, _mergeable(classes, n_splits))):
        out.append(
            PersonSplit(
                tuple(sorted(arr[tr].tolist())),
                tuple(sorted(arr[va].tolist())),
                seed,
                f"kfold:{k}/{n_splits}",
            )
        )
    return out
