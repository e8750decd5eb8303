"""Canonical labels of the data layout: which photo shows which mask state.

The class scheme itself (names, ``class_id``, ``decompose``, ``age_band``, ``NUM_CLASSES``) is
defined in ``runners/classes.py`` and re-exported here for the data layer's callers.
"""

from __future__ import annotations

from runners.classes import (
    AGE_BAND_NAMES,
    CANONICAL_CUTOFF,
    CLASS_NAMES,
    GENDER_NAMES,
    MASK_NAMES,
    NUM_CLASSES,
    YOUNG_CUTOFF,
    age_band,
    class_id,
    decompose,
)

PHOTOS = ("mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal")
EXTENSIONS = (".jpg", ".jpeg", ".png")
MASK_OF_PHOTO = {"mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0, "incorrect_mask": 1, "normal": 2}

__all__ = [
    "AGE_BAND_NAMES",
    "CANONICAL_CUTOFF",
    "CLASS_NAMES",
    "EXTENSIONS",
    "GENDER_NAMES",
    "MASK_NAMES",
    "MASK_OF_PHOTO",
    "NUM_CLASSES",
    "PHOTOS",
    "YOUNG_CUTOFF",
    "age_band",
    "class_id",
    "decompose",
]
