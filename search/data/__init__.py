"""The data path: read and validate the layout, label, relabel, split by person, cache images.

No optuna here, and torch only for the face_detect crop's detector (search.data.mtcnn): this
layer hands paths, label arrays, splits and uint8 image
arrays to the rest of the harness.
"""

from __future__ import annotations

from search.data.cache import CACHE_VERSION, CROPS, cache_files, crop_box, image_cache, load_image
from search.data.errors import DataError
from search.data.labels import (
    AGE_BAND_NAMES,
    CANONICAL_CUTOFF,
    CLASS_NAMES,
    EXTENSIONS,
    GENDER_NAMES,
    MASK_NAMES,
    MASK_OF_PHOTO,
    NUM_CLASSES,
    PHOTOS,
    age_band,
    class_id,
    decompose,
)
from search.data.layout import EvalData, TrainData, load_eval, load_recorded_train, load_train
from search.data.relabel import Fix, read_relabel
from search.data.split import PersonSplit, kfold_people, split_people

__all__ = [
    "AGE_BAND_NAMES",
    "CACHE_VERSION",
    "CANONICAL_CUTOFF",
    "CLASS_NAMES",
    "CROPS",
    "EXTENSIONS",
    "GENDER_NAMES",
    "MASK_NAMES",
    "MASK_OF_PHOTO",
    "NUM_CLASSES",
    "PHOTOS",
    "DataError",
    "EvalData",
    "Fix",
    "PersonSplit",
    "TrainData",
    "age_band",
    "cache_files",
    "class_id",
    "crop_box",
    "decompose",
    "image_cache",
    "kfold_people",
    "load_eval",
    "load_image",
    "load_recorded_train",
    "load_train",
    "read_relabel",
    "split_people",
]
