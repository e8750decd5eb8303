"""The class scheme (runners/classes.py): index arithmetic, names, the age bands, and a light import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from runners.classes import (
    AGE_BAND_NAMES,
    CLASS_NAMES,
    GENDER_NAMES,
    MASK_NAMES,
    NUM_CLASSES,
    age_band,
    class_id,
    class_table,
    decompose,
)

# (mask, gender, age) -> class, worked out by hand from mask*6 + gender*3 + band
HAND = [
    (0, 0, 18, 0),
    (0, 0, 29, 0),
    (0, 0, 30, 1),
    (0, 0, 59, 1),
    (0, 0, 60, 2),
    (0, 1, 29, 3),
    (0, 1, 30, 4),
    (0, 1, 60, 5),
    (1, 0, 45, 7),
    (1, 1, 59, 10),
    (1, 1, 60, 11),
    (2, 0, 20, 12),
    (2, 1, 30, 16),
    (2, 1, 60, 17),
]


@pytest.mark.parametrize(("mask", "gender", "age", "expected"), HAND)
def test_canonical_class_hand_examples(mask: int, gender: int, age: int, expected: int) -> None:
    assert class_id(mask, gender, age_band(age)) == expected
    assert decompose(expected) == (mask, gender, age_band(age))


def test_boundaries_under_cutoffs() -> None:
    ages = np.array([29, 30, 57, 58, 59, 60])
    assert age_band(ages).tolist() == [0, 1, 1, 1, 1, 2]
    assert age_band(ages, cutoff=59).tolist() == [0, 1, 1, 1, 2, 2]
    assert age_band(ages, cutoff=58).tolist() == [0, 1, 1, 2, 2, 2]
    assert age_band(ages, cutoff=57).tolist() == [0, 1, 2, 2, 2, 2]
    assert isinstance(age_band(57, 58), int)


def test_arrays_and_roundtrip() -> None:
    labels = np.arange(NUM_CLASSES)
    m, g, b = decompose(labels)
    assert np.array_equal(class_id(m, g, b), labels)
    assert m.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert CLASS_NAMES[17] == "not_wear/female/>=60" and len(CLASS_NAMES) == 18


@pytest.mark.parametrize("cutoff", [30, 121, True, 58.5])
def test_bad_cutoff_is_rejected(cutoff: object) -> None:
    with pytest.raises(ValueError, match="cutoff"):
        age_band(40, cutoff)  # type: ignore[arg-type]


def test_out_of_range_parts_are_rejected() -> None:
    with pytest.raises(ValueError, match="mask"):
        class_id(3, 0, 0)
    with pytest.raises(ValueError, match="class id"):
        decompose(18)


@pytest.mark.parametrize("c", range(NUM_CLASSES))
def test_every_class_round_trips_through_its_parts_and_its_name(c: int) -> None:
    mask, gender, band = decompose(c)
    assert class_id(mask, gender, band) == c
    assert c == mask * 6 + gender * 3 + band  # docs/domain.md, "Classes and metric"
    m, g, a = CLASS_NAMES[c].split("/")
    assert (MASK_NAMES.index(m), GENDER_NAMES.index(g), AGE_BAND_NAMES.index(a)) == (mask, gender, band)
    assert class_table()[c] == {"index": c, "mask": m, "gender": g, "age": a}


def test_the_scheme_has_one_spelling_and_eighteen_distinct_classes() -> None:
    assert NUM_CLASSES == 18 and len(set(CLASS_NAMES)) == NUM_CLASSES
    assert MASK_NAMES == ("wear", "incorrect", "not_wear")
    assert [row["index"] for row in class_table()] == list(range(NUM_CLASSES))


def test_the_scheme_loads_without_torch_for_the_data_layer_and_the_bundle() -> None:
    code = ("import sys, runners.classes, search.data; "
            "print(','.join(m for m in ('torch', 'timm', 'runners.models') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
