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
    [
        ("head", "two"), ("schedule", "steps"), ("unfrozen_depth", -2), ("ema_decay", 1.0), ("ema_decay", -0.1),
        ("optimizer", "lamb"), ("head_type", "conv"), ("head_hidden", 0), ("head_hidden", 10**13), ("head_dropout", 1.0), ("drop_rate", -0.1),
        ("augment_scope", "copies"), ("lr_decay", 0.0), ("restart_epochs", 0), ("step_epochs", 0),
        ("plateau_patience", -1), ("head", "coral"), ("age_loss_weight", -0.5),
    ],
)
def test_bad_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrialConfig(**{field: value})


def test_dicts_stored_before_the_new_fields_load_with_todays_behaviour() -> None:
    # A config dict as studies and bundles recorded it before optimizer, schedules, heads and scope existed.
    new = {"optimizer", "head_type", "head_hidden", "head_dropout", "augment_scope", "restart_epochs",
           "step_epochs", "lr_decay", "plateau_patience"}
    old = {k: v for k, v in TrialConfig(head="multi", oversample="old").to_dict().items() if k not in new}
    config = TrialConfig.from_dict(old)
    assert (config.optimizer, config.schedule, config.head_type, config.augment_scope) == (
        "adamw", "cosine", "linear", "all")


def test_oversampled_scope_needs_oversampling() -> None:
    with pytest.raises(ValueError, match=r"augment_scope.*oversample.*'old' or 'rare'"):
        TrialConfig(augment="flip", augment_scope="oversampled")
    assert TrialConfig(augment="flip", augment_scope="oversampled", oversample="old").augment_scope == "oversampled"
