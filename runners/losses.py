"""Focal loss, class weights and oversampling weights computed from the training labels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from runners.classes import NUM_CLASSES, OLD_BAND, decompose


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) generalised to class weights and label smoothing.

    Per sample: ``-sum_c q_c * w_c * (1 - p_c)**gamma * log p_c`` with ``q`` the (smoothed)
    target distribution. The mean is normalised by the summed weight of the targets, exactly as
    ``F.cross_entropy`` does, so gamma = 0 *is* cross-entropy (with the same weight and
    smoothing semantics).
    """

    def __init__(self, gamma: float = 0.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"FocalLoss gamma must be >= 0 but got {gamma}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"FocalLoss label_smoothing must be in [0, 1) but got {label_smoothing}.")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        term = logp
        if self.gamma > 0:
            # 1 - p = -expm1(log p) is accurate near p = 1; the floor keeps the gradient of
            # x**gamma finite at x = 0 when gamma < 1.
            term = (-torch.expm1(logp)).clamp_min(1e-12).pow(self.gamma) * logp
        n_classes = logits.shape[1]
        if self.label_smoothing > 0:
            q = torch.full_like(logp, self.label_smoothing / n_classes)
            q.scatter_add_(1, target[:, None], torch.full_like(logp[:, :1], 1.0 - self.label_smoothing))
            if self.weight is not None:
                q = q * self.weight[None, :]
            per_sample = -(q * term).sum(dim=1)
        else:
            per_sample = -term.gather(1, target[:, None]).squeeze(1)
            if self.weight is not None:
                per_sample = per_sample * self.weight[target]
        if self.weight is not None:
            return per_sample.sum() / self.weight[target].sum()
        return per_sample.mean()


def class_weights(labels: np.ndarray, scheme: str, num_classes: int = NUM_CLASSES) -> torch.Tensor | None:
    """Per-class loss weights from training label counts.

    "inverse": n / (k * n_c) (sklearn's "balanced"); "sqrt_inverse": proportional to
    1 / sqrt(n_c). Both are scaled so the mean weight over training images is 1. A class absent
    from the training labels gets weight 0: no image carries it, and a non-zero weight would
    only push label-smoothing mass onto a class the data never shows.
    """
    if scheme == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    if scheme == "inverse":
        weights[present] = 1.0 / counts[present]
    elif scheme == "sqrt_inverse":
        weights[present] = 1.0 / np.sqrt(counts[present])
    else:
        raise ValueError(f"class_weighting must be one of ['none', 'inverse', 'sqrt_inverse'] but got {scheme!r}.")
    weights *= counts.sum() / (weights * counts).sum()
    return torch.tensor(weights, dtype=torch.float32)


def oversample_weights(labels: np.ndarray, scheme: str, num_classes: int = NUM_CLASSES) -> np.ndarray | None:
    """Per-image sampling weights for a ``WeightedRandomSampler`` (None = plain shuffling).

    The targeted classes ("rare": below the median size of the classes present; "old": age
    band 2, OLD_BAND in runners/classes.py) are drawn as if they had the median class size; no class is
    ever drawn less often than its share.
    """
    if scheme == "none":
        return None
    return _oversample_factors(labels, scheme, num_classes)[np.asarray(labels, dtype=np.int64)]


def oversample_copies(labels: np.ndarray, scheme: str, seed: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Positions into ``labels`` of the extra copies that bring each targeted class up to the
    size ``oversample_weights`` draws it at: ``round((factor - 1) * n_c)`` copies of class c, its
    rows taken in a seeded order and cycled, so no row gets two copies more than another."""
    if scheme == "none":
        return np.zeros(0, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    factors = _oversample_factors(labels, scheme, num_classes)
    rng = np.random.default_rng(seed)
    copies = []
    for c in np.flatnonzero(factors > 1.0):
        rows = rng.permutation(np.flatnonzero(labels == c))
        wanted = round((factors[c] - 1.0) * len(rows))
        copies.append(np.resize(rows, wanted))
    return np.concatenate(copies) if copies else np.zeros(0, dtype=np.int64)


def _oversample_factors(labels: np.ndarray, scheme: str, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    median = float(np.median(counts[present]))
    if scheme == "rare":
        targeted = present & (counts < median)
    elif scheme == "old":
        targeted = present & (decompose(np.arange(num_classes))[2] == OLD_BAND)
    else:
        raise ValueError(f"oversample must be one of ['none', 'rare', 'old'] but got {scheme!r}.")
    factor = np.ones(num_classes, dtype=np.float64)
    factor[targeted] = np.maximum(1.0, median / counts[targeted])
    return factor
