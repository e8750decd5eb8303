from __future__ import annotations

import optuna
import pytest
from optuna.trial import FixedTrial

from runners.config import TrialConfig
from spaces import SPACES, Categorical, FloatRange, IntRange, SpaceSpec, get_space, parse_param
from spaces.standard import depth_param_name

STAGES = {"test_resnet": 5, "test_efficientnet": 4}


def _spec() -> SpaceSpec:
    return SpaceSpec(
        fixed={"epochs": 2, "height": 32, "width": 24},
        params={
            "backbone": Categorical(("test_resnet", "test_efficientnet")),
            "age_cutoff": Categorical((58, 59, 60)),
            "focal_gamma": FloatRange(0.0, 5.0),
            "lr": FloatRange(1e-4, 1e-2, log=True),
            "unfrozen_depth": IntRange(0, None),
            "augment": Categorical(("none", "flip")),
        },
        stage_counts=STAGES,
    )


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_space_replays_a_fixed_trial(name: str) -> None:
    params = {
        "backbone": "test_efficientnet",
        "age_cutoff": 59,
        "focal_gamma": 2.5,
        "lr": 1e-3,
        depth_param_name("test_efficientnet"): 3,
        "augment": "flip",
    }
    config = get_space(name)(FixedTrial(params), _spec())
    assert isinstance(config, TrialConfig)
    assert (config.backbone, config.age_cutoff, config.focal_gamma, config.unfrozen_depth) == (
        "test_efficientnet", 59, 2.5, 3,
    )
    assert config.epochs == 2 and config.height == 32  # fixed values pass through


def test_depth_is_bounded_by_the_backbones_stages() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen: dict[str, set[int]] = {"test_resnet": set(), "test_efficientnet": set()}
    for _ in range(80):
        trial = study.ask()
        config = get_space("standard")(trial, _spec())
        seen[config.backbone].add(config.unfrozen_depth)
        assert depth_param_name(config.backbone) in trial.params
        study.tell(trial, 0.0)
    assert max(seen["test_efficientnet"]) == 4 and max(seen["test_resnet"]) == 5
    assert min(seen["test_resnet"]) == 0


def test_unknown_space_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="standard"):
        get_space("nope")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1, 2], Categorical((1, 2))),
        ({"low": 0.0, "high": 2.0}, FloatRange(0.0, 2.0)),
        ({"low": 1e-4, "high": 1e-2, "log": True}, FloatRange(1e-4, 1e-2, log=True)),
        ({"low": 1, "high": 4}, IntRange(1, 4)),
        ({"low": 0, "high": "all"}, IntRange(0, None)),
    ],
)
def test_parse_param(value: object, expected: object) -> None:
    assert parse_param("x", value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "put constants in"),
        ([], "empty list"),
        ({"low": 2, "high": 1}, "above high"),
        ({"low": 0.0, "high": 1.0, "log": True}, "low > 0"),
        ({"low": 1, "hi": 2}, "keys"),
    ],
)
def test_parse_param_errors(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_param("x", value)


def test_conditional_params_are_asked_only_where_they_mean_something() -> None:
    spec = SpaceSpec(
        fixed={"augment": "flip"},
        params={
            "oversample": Categorical(("none", "old")),
            "augment_scope": Categorical(("all", "oversampled")),
            "schedule": Categorical(("cosine", "plateau")),
            "plateau_patience": Categorical((1, 2)),
            "head_type": Categorical(("linear", "mlp")),
            "head_hidden": Categorical((64, 128)),
        },
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(40):
        trial = study.ask()
        config = get_space("standard")(trial, spec)  # never the invalid oversampled scope without oversampling
        assert ("augment_scope" in trial.params) == (config.oversample == "old")
        assert ("plateau_patience" in trial.params) == (config.schedule == "plateau")
        assert ("head_hidden" in trial.params) == (config.head_type == "mlp")
        kinds.add((config.oversample, config.schedule, config.head_type))
        study.tell(trial, 0.0)
    assert len(kinds) == 8
    replay = get_space("standard")(FixedTrial({"oversample": "none", "schedule": "cosine", "head_type": "linear"}), spec)
    assert (replay.augment_scope, replay.plateau_patience, replay.head_hidden) == ("all", 1, 512)


def test_the_age_loss_weight_is_asked_of_ordinal_trials_only() -> None:
    spec = SpaceSpec(
        fixed={},
        params={"head": Categorical(("single", "ordinal")), "age_loss_weight": FloatRange(0.25, 4.0, log=True)},
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    heads = set()
    for _ in range(12):
        trial = study.ask()
        config = get_space("standard")(trial, spec)
        assert ("age_loss_weight" in trial.params) == (config.head == "ordinal")
        assert config.age_loss_weight == (trial.params.get("age_loss_weight", 1.0))
        heads.add(config.head)
        study.tell(trial, 0.0)
    assert heads == {"single", "ordinal"}
