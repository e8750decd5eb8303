"""The 18-class scheme, defined here once: class = mask * 6 + gender * 3 + age_band.

mask: 0 wear (mask1..mask5), 1 incorrect (incorrect_mask), 2 not_wear (normal);
gender: 0 male, 1 female; age_band: 0 (< 30), 1 (30 <= age < cutoff), 2 (>= cutoff).
The canonical cutoff is 60; other cutoffs only ever change *training* labels (docs/domain.md,
"Classes and metric"). It sits in ``runners`` so that the training side and ``search`` (data,
records, bundle, synthetic data) share it while ``runners`` imports nothing from ``search``.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import numpy.typing as npt

MASK_NAMES = ("wear", "incorrect", "not_wear")
GENDER_NAMES = ("male", "female")
AGE_BAND_NAMES = ("<30", "30-59", ">=60")
NUM_MASKS, NUM_GENDERS, NUM_AGE_BANDS = len(MASK_NAMES), len(GENDER_NAMES), len(AGE_BAND_NAMES)
NUM_CLASSES = NUM_MASKS * NUM_GENDERS * NUM_AGE_BANDS
CANONICAL_CUTOFF = 60
OLD_BAND = NUM_AGE_BANDS - 1  # the age band from the cutoff on
YOUNG_CUTOFF = 30  # band 0 ends here whatever the old-age cutoff
CLASS_NAMES = tuple(f"{m}/{g}/{a}" for m in MASK_NAMES for g in GENDER_NAMES for a in AGE_BAND_NAMES)

IntOrArray = int | npt.NDArray[np.int64]


def _check_cutoff(cutoff: int) -> int:
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, np.integer)):
        raise ValueError(f"age cutoff must be an integer but got {cutoff!r}.")
    if not YOUNG_CUTOFF < cutoff <= 120:
        raise ValueError(
            f"age cutoff (first age of the old band) must be between {YOUNG_CUTOFF + 1} and 120 "
            f"but got {cutoff}."
        )
    return int(cutoff)


def _as_int_array(name: str, values: object) -> npt.NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integers but got dtype {arr.dtype}: {arr.ravel()[:5]!r}.")
    return arr.astype(np.int64, copy=False)


def _check_range(name: str, arr: npt.NDArray[np.int64], high: int) -> None:
    bad = (arr < 0) | (arr >= high)
    if np.any(bad):
        raise ValueError(f"{name} must be in 0..{high - 1} but got {arr[bad].ravel()[:5].tolist()}.")


def _out(arr: npt.NDArray[np.int64], scalar: bool) -> IntOrArray:
    return int(arr) if scalar else arr


@overload
def age_band(age: int, cutoff: int = ...) -> int: ...
@overload
def age_band(age: npt.ArrayLike, cutoff: int = ...) -> IntOrArray: ...
def age_band(age: npt.ArrayLike, cutoff: int = CANONICAL_CUTOFF) -> IntOrArray:
    """Age band of ``age``: 0 below 30, 1 from 30 to ``cutoff - 1``, 2 from ``cutoff`` on.

    A scalar gives an ``int``, an array an ``int64`` array of the same shape.
    """
    cutoff = _check_cutoff(cutoff)
    arr = _as_int_array("age", age)
    if np.any(arr < 0):
        raise ValueError(f"age must not be negative but got {arr[arr < 0].ravel()[:5].tolist()}.")
    band = (arr >= YOUNG_CUTOFF).astype(np.int64) + (arr >= cutoff).astype(np.int64)
    return _out(band, arr.ndim == 0)


def class_id(mask: npt.ArrayLike, gender: npt.ArrayLike, band: npt.ArrayLike) -> IntOrArray:
    """``mask * 6 + gender * 3 + band`` (the class index) for scalars or broadcastable arrays."""
    m, g, b = _as_int_array("mask", mask), _as_int_array("gender", gender), _as_int_array("age band", band)
    _check_range("mask", m, NUM_MASKS)
    _check_range("gender", g, NUM_GENDERS)
    _check_range("age band", b, NUM_AGE_BANDS)
    out = (m * NUM_GENDERS + g) * NUM_AGE_BANDS + b
    return _out(out, out.ndim == 0)


def decompose(label: npt.ArrayLike) -> tuple[IntOrArray, IntOrArray, IntOrArray]:
    """Inverse of :func:`class_id`: ``(mask, gender, band)``."""
    arr = _as_int_array("class id", label)
    _check_range("class id", arr, NUM_CLASSES)
    scalar = arr.ndim == 0
    mask, rest = np.divmod(arr, NUM_GENDERS * NUM_AGE_BANDS)
    gender, band = np.divmod(rest, NUM_AGE_BANDS)
    return _out(mask, scalar), _out(gender, scalar), _out(band, scalar)


def class_table() -> list[dict[str, Any]]:
    """Every class in index order with its mask, gender and age-band names (the bundle's class map)."""
    masks, genders, bands = (np.asarray(part).tolist() for part in decompose(np.arange(NUM_CLASSES)))
    return [
        {"index": c, "mask": MASK_NAMES[m], "gender": GENDER_NAMES[g], "age": AGE_BAND_NAMES[b]}
        for c, (m, g, b) in enumerate(zip(masks, genders, bands, strict=True))
    ]
