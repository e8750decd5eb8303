"""The three-part head: mask, gender and age-band logits whose product is the 18 classes."""

from __future__ import annotations

import torch

from runners import TrialConfig, build_model
from runners.heads import HEADS


def test_the_head_is_registered_with_eight_outputs_and_learns_no_age() -> None:
    head = HEADS.get("multi")
    assert head.outputs == 3 + 2 + 3 and not head.learns_age


def test_three_heads_combine_to_a_product_distribution() -> None:
    torch.manual_seed(0)
    model = build_model(TrialConfig(backbone="test_resnet", head="multi")).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        scores = model(x)
        raw = model.net(x)
    assert scores.shape == (5, 18) and raw.shape == (5, 8)
    probs = torch.softmax(scores, 1)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    p_mask, p_gender, p_age = (torch.softmax(t, 1) for t in torch.split(raw, [3, 2, 3], dim=1))
    joint = probs.view(5, 3, 2, 3)  # class = mask * 6 + gender * 3 + age
    torch.testing.assert_close(joint.sum((2, 3)), p_mask)
    torch.testing.assert_close(joint.sum((1, 3)), p_gender)
    torch.testing.assert_close(joint.sum((1, 2)), p_age)
    product = p_mask[:, :, None, None] * p_gender[:, None, :, None] * p_age[:, None, None, :]
    torch.testing.assert_close(joint, product)
