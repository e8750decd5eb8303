from __future__ import annotations

import json

import pytest

from runners import TrialConfig


def test_round_trip_through_json() -> None:
    config = TrialConfig(
        backbone="test_vit", unfrozen_depth=2, head="multi", age_cutoff=58, focal_gamma=2.0,
        class_weighting="sqrt_inverse", oversample="old", augment="bccs", extra={"note": "x"},
    )
    again = TrialConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.to_dict() == config.to_dict()


def test_unknown_key_is_rejected_by_name() -> None:
    data = TrialConfig().to_dict() | {"learning_rate": 0.1}
    with pytest.raises(ValueError, match="learning_rate"):
        TrialConfig.from_dict(data)


@pytest.mark.parametrize(
    "field,value",
    [("head", "two"), ("schedule", "step"), ("unfrozen_depth", -2), ("ema_decay", 1.0), ("ema_decay", -0.1)],
)
def test_bad_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrialConfig(**{field: value})
