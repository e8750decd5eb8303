"""The ordinal age head: age learned as an ordered quantity from the people's real ages.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runners.classes import NUM_CLASSES, NUM_GENDERS, NUM_MASKS, YOUNG_CUTOFF, decompose

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


class OrdinalCombine(nn.Module):
    """``NUM_ORDINAL_OUTPUTS`` logits [mask 3 | gender 2 | age units] -> 18 class log-probabilities,
    the old band from ``cutoff`` on; ``age_logits`` gives the cumulative logits the loss trains."""

    def __init__(self, cutoff: int) -> None:
        super().__init__()
        self.cutoff = int(cutoff)
        self.young_at, self.old_at = age_index(YOUNG_CUTOFF), age_index(self.cutoff)
        if self.old_at <= self.young_at:
            raise ValueError(f"the old line {cutoff} must lie above {YOUNG_CUTOFF}.")
        mask, gender, band = (torch.as_tensor(part) for part in decompose(np.arange(NUM_CLASSES)))
        self.register_buffer("mask_idx", mask, persistent=False)
        self.register_buffer("gender_idx", gender, persistent=False)
        self.register_buffer("age_idx", band, persistent=False)
        self.register_buffer("prior", torch.from_numpy(_prior_offsets()), persistent=False)

    def age_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, NUM_AGE_UNITS) ``logit P(age >= t)``, non-increasing in ``t``."""
        units = logits.float()[:, NUM_MASKS + NUM_GENDERS :] + self.prior
        gaps = F.softplus(units[:, 1:])
        return torch.cat([units[:, :1], units[:, :1] - torch.cumsum(gaps, dim=1)], dim=1)

    def band_log_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, 3) log-probabilities of the age bands."""
        z = self.age_logits(logits)
        young, old = z[:, self.young_at], z[:, self.old_at]
        # log(sigmoid(a) - sigmoid(b)) = logsig(a) + logsig(-b) + log(1 - exp(b - a)), b < a
        middle = (
            -F.softplus(-young)
            - F.softplus(old)
            + torch.log((1.0 - torch.exp(old - young)).clamp_min(_LOG_FLOOR))
        )
        return torch.stack([-F.softplus(young), middle, -F.softplus(-old)], dim=1)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        mask, gender = torch.split(logits.float()[:, : NUM_MASKS + NUM_GENDERS], [NUM_MASKS, NUM_GENDERS], dim=1)
        return (
            torch.log_softmax(mask, 1).index_select(1, self.mask_idx)
            + torch.log_softmax(gender, 1).index_select(1, self.gender_idx)
            + self.band_log_probs(logits).index_select(1, self.age_idx)
        )


class OrdinalAgeLoss(nn.Module):
    """CORAL's loss: mean over thresholds of the binary cross-entropy of ``z_t`` against
    ``age >= t``, averaged over the batch; ages are clipped into AGE_MIN..AGE_MAX."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("thresholds", torch.from_numpy(THRESHOLDS.astype(np.float32)), persistent=False)

    def forward(self, age_logits: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
        ages = ages.float().clamp(AGE_MIN, AGE_MAX)
        target = (ages[:, None] >= self.thresholds[None, :]).float()
        return F.binary_cross_entropy_with_logits(age_logits.float(), target)
