"""The single head: the classifier's 18 logits are the class scores as they are."""

from __future__ import annotations

import pytest
import torch

from runners import TrialConfig, build_model
from runners.heads import HEADS


def test_the_scores_are_the_classifier_logits_and_no_age_is_learned() -> None:
    head = HEADS.get("single")
    assert head.outputs == 18 and not head.learns_age
    torch.manual_seed(0)
    model = build_model(TrialConfig(backbone="test_resnet", head="single")).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model.net(x))
    with pytest.raises(ValueError, match=r"needs a head that learns ages \(ordinal\)"):
        model.forward_with_age(x)
