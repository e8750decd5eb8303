"""multi: three heads, mask (3), gender (2) and age band (3), combined to the 18 classes.

The 8 logits are laid out [mask | gender | age]; class c scores
``logp_mask[mask(c)] + logp_gender[gender(c)] + logp_age[band(c)]`` (runners.classes.decompose),
so a softmax over the classes is the product of the three heads' distributions (and the scores
are its log-probabilities).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runners.classes import NUM_AGE_BANDS, NUM_CLASSES, NUM_GENDERS, NUM_MASKS, decompose
from runners.heads import HEADS, Head


def class_indices() -> dict[str, np.ndarray]:
    """Each class's mask, gender and age-band position, as the buffers the three-part heads gather by."""
    mask, gender, band = decompose(np.arange(NUM_CLASSES))
    return {"mask_idx": np.asarray(mask), "gender_idx": np.asarray(gender), "age_idx": np.asarray(band)}


def _constants(age_cutoff: int) -> dict[str, np.ndarray | int]:
    return class_indices()


def _class_scores(logits: Any, c: Any) -> Any:
    mask, gender, age = logits.float().split([NUM_MASKS, NUM_GENDERS, NUM_AGE_BANDS], dim=1)
    return (
        mask.log_softmax(1).index_select(1, c.mask_idx)
        + gender.log_softmax(1).index_select(1, c.gender_idx)
        + age.log_softmax(1).index_select(1, c.age_idx)
    )


HEADS.add("multi", Head(
    name="multi",
    outputs=NUM_MASKS + NUM_GENDERS + NUM_AGE_BANDS,
    class_scores=_class_scores,
    constants=_constants,
))
