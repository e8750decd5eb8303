from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from runners import FocalLoss, class_weights, oversample_weights
from runners.losses import oversample_copies


def _logits() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(32, 18, generator=gen) * 3, torch.randint(0, 18, (32,), generator=gen)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_gamma_zero_is_cross_entropy(smoothing: float, weighted: bool) -> None:
    logits, target = _logits()
    weight = torch.linspace(0.2, 3.0, 18) if weighted else None
    ours = FocalLoss(0.0, weight=weight, label_smoothing=smoothing)(logits, target)
    ref = F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
    assert abs(ours.item() - ref.item()) < 1e-6


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_closed_form_on_hand_made_logits(gamma: float) -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-3.0, 1.0, 4.0]])
    target = torch.tensor([0, 2, 1])
    expected = []
    for row, t in zip(logits.tolist(), target.tolist()):
        p_t = math.exp(row[t]) / sum(math.exp(v) for v in row)
        expected.append(-((1 - p_t) ** gamma) * math.log(p_t))
    loss = FocalLoss(gamma)(logits, target)
    assert loss.item() == pytest.approx(sum(expected) / 3, rel=1e-6)


def test_focal_down_weights_easy_examples_and_has_finite_gradients() -> None:
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.0, 0.0, 0.0]], requires_grad=True)  # p_t ~ 1 and 1/3
    target = torch.tensor([0, 0])
    loss = FocalLoss(0.5)(logits, target)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    easy, hard = (FocalLoss(2.0, )(logits[i : i + 1].detach(), target[:1]).item() for i in range(2))
    assert easy < 1e-12 < hard


def test_class_weights_inverse_and_absent_classes() -> None:
    labels = np.array([0] * 8 + [1] * 2 + [5] * 10)
    inverse = class_weights(labels, "inverse")
    assert inverse is not None and inverse.shape == (18,)
    counts = np.bincount(labels, minlength=18)
    assert float((inverse.numpy() * counts).sum()) == pytest.approx(len(labels))  # mean image weight 1
    assert inverse[1] / inverse[0] == pytest.approx(4.0)
    assert inverse[2] == 0 and inverse[17] == 0  # absent from train
    sqrt = class_weights(labels, "sqrt_inverse")
    assert sqrt is not None and sqrt[1] / sqrt[0] == pytest.approx(2.0)
    assert class_weights(labels, "none") is None
    with pytest.raises(ValueError, match="balanced"):
        class_weights(labels, "balanced")


def test_oversample_weights_rare_and_old() -> None:
    labels = np.array([0] * 40 + [1] * 20 + [2] * 5 + [3] * 20 + [5] * 10)
    rare = oversample_weights(labels, "rare")
    assert rare is not None and rare.shape == labels.shape
    # median of present sizes (40, 20, 5, 20, 10) = 20: classes 2 and 5 are drawn as if 20 strong
    assert rare[labels == 2][0] == pytest.approx(4.0) and rare[labels == 5][0] == pytest.approx(2.0)
    assert np.all(rare[np.isin(labels, [0, 1, 3])] == 1.0)
    old = oversample_weights(labels, "old")
    assert old is not None
    assert old[labels == 2][0] == pytest.approx(4.0) and old[labels == 5][0] == pytest.approx(2.0)
    assert np.all(old[labels < 2] == 1.0)
    assert oversample_weights(labels, "none") is None


@pytest.mark.parametrize("scheme", ["rare", "old"])
def test_oversample_copies_bring_classes_to_their_drawn_size(scheme: str) -> None:
    labels = np.array([0] * 40 + [1] * 20 + [2] * 5 + [3] * 20 + [5] * 7)
    weights = oversample_weights(labels, scheme)
    copies = oversample_copies(labels, scheme, seed=0)
    assert weights is not None and copies.dtype == np.int64
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        factor = weights[rows[0]]
        assert np.isin(copies, rows).sum() == round((factor - 1) * len(rows)), c
        per_row = np.bincount(copies, minlength=len(labels))[rows]
        assert per_row.max() - per_row.min() <= 1  # spread evenly over the class's rows
    assert np.array_equal(copies, oversample_copies(labels, scheme, seed=0))
    assert not np.array_equal(copies[labels[copies] == 5], oversample_copies(labels, scheme, seed=1)[labels[copies] == 5])
    assert oversample_copies(labels, "none", seed=0).size == 0
