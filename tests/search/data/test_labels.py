"""search/data/labels.py: the photo names of the layout, mapped onto the class scheme."""

from __future__ import annotations

import runners.classes
import search.data
from search.data import MASK_NAMES, MASK_OF_PHOTO, PHOTOS


def test_every_photo_has_a_mask_state_of_the_scheme() -> None:
    assert sorted(MASK_OF_PHOTO) == sorted(PHOTOS)
    assert [MASK_NAMES[MASK_OF_PHOTO[p]] for p in PHOTOS] == ["wear"] * 5 + ["incorrect", "not_wear"]


def test_the_data_layer_re_exports_the_one_scheme() -> None:
    for name in ("NUM_CLASSES", "CLASS_NAMES", "MASK_NAMES", "GENDER_NAMES", "AGE_BAND_NAMES",
                 "CANONICAL_CUTOFF", "age_band", "class_id", "decompose"):
        assert getattr(search.data, name) is getattr(runners.classes, name), name
