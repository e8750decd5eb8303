"""Canonical labels of the 18-class problem: class = mask * 6 + gender * 3 + age_band.

mask: 0 wear (mask1..mask5), 1 incorrect (incorrect_mask), 2 not wear (normal);
gender: 0 male, 1 female; age_band: 0 (< 30), 1 (30 <= age < cutoff), 2 (>= cutoff).
The canonical cutoff is 60; other cutoffs only ever change *training* labels.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import numpy.typing as npt

PHOTOS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
EXTENSIONS = (".jpg", ".jpeg", ".png")
MASK_OF_PHOTO = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}
MASK_NAMES = ("wear", "incorrect", "not_wear")
GENDER_NAMES = ("male", "female")
AGE_BAND_NAMES = ("<30", "30-59", ">=60")
CANONICAL_CUTOFF = 60
YOUNG_CUTOFF = 30  # band 0 ends here whatever the old-age cutoff
NUM_CLASSES = 18
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
    """``mask * 6 + gender * 3 + band`` for scalars or broadcastable arrays."""
    m, g, b = _as_int_array("mask", mask), _as_int_array("gender", gender), _as_int_array("age band", band)
    _check_range("mask", m, 3)
    _check_range("gender", g, 2)
    _check_range("age band", b, 3)
    out = m * 6 + g * 3 + b
    return _out(out, out.ndim == 0)


def decompose(label: npt.ArrayLike) -> tuple[IntOrArray, IntOrArray, IntOrArray]:
    """Inverse of :func:`class_id`: ``(mask, gender, band)``."""
    arr = _as_int_array("class id", label)
    _check_range("class id", arr, NUM_CLASSES)
    scalar = arr.ndim == 0
    return _out(arr // 6, scalar), _out((arr % 6) // 3, scalar), _out(arr % 3, scalar)
