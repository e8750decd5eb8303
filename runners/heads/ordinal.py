"""ordinal: the mask and gender heads beside an ordinal age head, which learns age as an ordered
quantity from the people's real ages.

The head's age units give one cumulative logit per age threshold ``t`` (19..65):
``z_t = logit P(age >= t)``. They are made non-increasing by construction (the first unit is
``z_19``, every later one subtracts a softplus gap), so ``P(age >= t)`` never rises with ``t``:
the rank consistency CORAL (Cao et al. 2020) gets from shared weights, here with gaps that may
depend on the photo. The loss on them is CORAL's: the mean binary cross-entropy of each
threshold against ``age >= t``, so a 59-year-old is nearly old to the model and a 20-year-old
is not.

The three age bands then follow from two thresholds: ``P(< 30) = 1 - P(age >= 30)``,
``P(>= cutoff) = P(age >= cutoff)`` and the middle band the difference, with the trial's
``age_cutoff`` as the old line (docs/domain.md: every old person is exactly 60; a cutoff of 58
predicts "old" from ``P(age >= 58)``, as three-band heads trained at 58 do). Combined with the
mask and gender heads they are the 18 class log-probabilities, so everything downstream (votes,
the decision rule, the bundle, ONNX) sees the same output as from any other head.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runners.classes import NUM_GENDERS, NUM_MASKS, YOUNG_CUTOFF
from runners.heads import HEADS, Head
from runners.heads.multi import class_indices

AGE_MIN, AGE_MAX = 18, 65  # ages are clipped into this range; every config cutoff (55-65) lies inside
THRESHOLDS = np.arange(AGE_MIN + 1, AGE_MAX + 1)  # z_t for t = 19..65
NUM_AGE_UNITS = len(THRESHOLDS)
NUM_ORDINAL_OUTPUTS = NUM_MASKS + NUM_GENDERS + NUM_AGE_UNITS
_LOG_FLOOR = 1e-12


def _prior_offsets() -> np.ndarray:
    """Constants added to the age units so that, at zero output, ``P(age >= t)`` falls evenly from
    19 to 60 (a uniform prior over 18..60, floored at 1 %) instead of dropping by softplus(0) per
    year, which would start every photo below 30."""
    share = np.clip((60 - THRESHOLDS + 1) / (60 - AGE_MIN + 1), 0.01, 0.99)
    z = np.log(share / (1.0 - share))
    gaps = np.maximum(-np.diff(z), 1e-3)  # softplus(c) = gap  <=>  c = log(expm1(gap))
    return np.concatenate([[z[0]], np.log(np.expm1(gaps))]).astype(np.float32)


def age_index(age: int) -> int:
    """Position of threshold ``age`` among the cumulative logits."""
    if not AGE_MIN < age <= AGE_MAX:
        raise ValueError(f"an ordinal age threshold must be in {AGE_MIN + 1}..{AGE_MAX} but got {age}.")
    return int(age - AGE_MIN - 1)


def _constants(age_cutoff: int) -> dict[str, np.ndarray | int]:
    """The class indices, the age prior, the thresholds, and the positions of the two band lines
    (the old one at the cutoff)."""
    young_at, old_at = age_index(YOUNG_CUTOFF), age_index(int(age_cutoff))
    if old_at <= young_at:
        raise ValueError(f"the old line {age_cutoff} must lie above {YOUNG_CUTOFF}.")
    return {
        **class_indices(),
        "prior": _prior_offsets(),
        "thresholds": THRESHOLDS.astype(np.float32),
        "young_at": young_at,
        "old_at": old_at,
    }


def age_logits(logits: Any, c: Any) -> Any:
    """(N, NUM_AGE_UNITS) ``logit P(age >= t)``, non-increasing in ``t``."""
    import torch
    import torch.nn.functional as F

    units = logits.float()[:, NUM_MASKS + NUM_GENDERS :] + c.prior
    gaps = F.softplus(units[:, 1:])
    return torch.cat([units[:, :1], units[:, :1] - torch.cumsum(gaps, dim=1)], dim=1)


def band_log_probs(logits: Any, c: Any) -> Any:
    """(N, 3) log-probabilities of the age bands."""
    import torch
    import torch.nn.functional as F

    z = age_logits(logits, c)
    young, old = z[:, c.young_at], z[:, c.old_at]
    # log(sigmoid(a) - sigmoid(b)) = logsig(a) + logsig(-b) + log(1 - exp(b - a)), b < a
    middle = (
        -F.softplus(-young)
        - F.softplus(old)
        + torch.log((1.0 - torch.exp(old - young)).clamp_min(_LOG_FLOOR))
    )
    return torch.stack([-F.softplus(young), middle, -F.softplus(-old)], dim=1)


def _class_scores(logits: Any, c: Any) -> Any:
    mask, gender = logits.float()[:, : NUM_MASKS + NUM_GENDERS].split([NUM_MASKS, NUM_GENDERS], dim=1)
    return (
        mask.log_softmax(1).index_select(1, c.mask_idx)
        + gender.log_softmax(1).index_select(1, c.gender_idx)
        + band_log_probs(logits, c).index_select(1, c.age_idx)
    )


def age_loss(age_logits: Any, ages: Any, c: Any) -> Any:
    """CORAL's loss: mean over thresholds of the binary cross-entropy of ``z_t`` against
    ``age >= t``, averaged over the batch; ages are clipped into AGE_MIN..AGE_MAX."""
    import torch.nn.functional as F

    ages = ages.float().clamp(AGE_MIN, AGE_MAX)
    target = (ages[:, None] >= c.thresholds[None, :]).float()
    return F.binary_cross_entropy_with_logits(age_logits.float(), target)


HEADS.add("ordinal", Head(
    name="ordinal",
    outputs=NUM_ORDINAL_OUTPUTS,
    class_scores=_class_scores,
    constants=_constants,
    age_logits=age_logits,
    age_loss=age_loss,
))
