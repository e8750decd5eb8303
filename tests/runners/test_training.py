from __future__ import annotations

import json
import math

import albumentations as A
import numpy as np
import pytest
import torch

from runners import (
    AUGMENT_SETS,
    ClassifierWithPreprocess,
    EpochRecord,
    ImageSet,
    TrialConfig,
    build_model,
    fit,
    lr_lambda,
    make_optimizer,
    model_data_config,
)
from runners.losses import FocalLoss
from runners.training import Plateau


def test_complete_trial_keeps_the_best_epoch(image_sets, tiny_config: TrialConfig) -> None:
    train, val = image_sets
    config = tiny_config.replace(epochs=3)
    seen: list[EpochRecord] = []
    result = fit(config, train, val, reporter=lambda record: seen.append(record) is not None, device="cpu")
    assert result.status == "complete" and result.device == "cpu"
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert seen == result.history
    f1s = [r.val_macro_f1 for r in result.history]
    assert result.best_epoch == int(np.argmax(f1s)) + 1 and result.best_macro_f1 == max(f1s)
    assert len(result.per_class_f1) == 18 and np.mean(result.per_class_f1) == pytest.approx(result.best_macro_f1)
    assert result.confusion.shape == (18, 18) and result.confusion.sum() == len(val)
    assert result.val_probs is not None and result.val_probs.shape == (len(val), 18)
    assert result.val_probs.dtype == np.float32 and np.allclose(result.val_probs.sum(1), 1, atol=1e-5)
    assert result.state_dict is not None and all(t.device.type == "cpu" for t in result.state_dict.values())
    assert 0 < result.n_trainable <= result.n_params
    for record in result.history:
        assert record.seconds > 0 and record.train_images_per_s > 0 and math.isfinite(record.train_loss)
        assert 0 < record.val_seconds < record.seconds  # the validation pass, timed inside the epoch
    summary = json.loads(json.dumps(result.to_summary()))
    assert summary["best_epoch"] == result.best_epoch and len(summary["history"]) == 3
    assert all(h["val_seconds"] > 0 for h in summary["history"])  # kept in the trial's attributes
    assert "val_probs" not in summary and "state_dict" not in summary


def _black(img: np.ndarray, **_: object) -> np.ndarray:
    return np.zeros_like(img)


def test_returned_weights_reproduce_the_returned_validation_probabilities(image_sets, tiny_config) -> None:
    # A set that blacks out every image: had validation gone through it, every row of val_probs
    # would be the same and would differ from the weights' predictions on the real images.
    train, val = image_sets
    blackout = lambda h, w: A.Compose([A.Lambda(image=_black)])
    AUGMENT_SETS["blackout_for_test"] = blackout
    try:
        config = tiny_config.replace(augment="blackout_for_test", epochs=2)
        result = fit(config, train, val, num_workers=0)
    finally:
        del AUGMENT_SETS["blackout_for_test"]
    assert result.status == "complete" and result.val_probs is not None and result.state_dict is not None
    np.testing.assert_allclose(result.val_probs, _predict(config, result.state_dict, val), atol=1e-5)
    assert not np.allclose(result.val_probs, result.val_probs[:1])


def test_moving_average_is_what_is_validated_and_kept(image_sets, tiny_config) -> None:
    # EMA changes nothing in the training trajectory (same seed), only which weights are scored
    # and returned: the scores differ from the raw run's, and the returned weights reproduce them.
    train, val = image_sets
    raw = fit(tiny_config, train, val, num_workers=0)
    config = tiny_config.replace(ema_decay=0.99)
    averaged = fit(config, train, val, num_workers=0)
    assert averaged.status == "complete" and averaged.val_probs is not None and averaged.state_dict is not None
    assert raw.val_probs is not None and not np.allclose(raw.val_probs, averaged.val_probs, atol=1e-3)
    assert [r.train_loss for r in raw.history] == [r.train_loss for r in averaged.history]
    np.testing.assert_allclose(averaged.val_probs, _predict(config, averaged.state_dict, val), atol=1e-5)


def _predict(config: TrialConfig, state_dict: dict[str, torch.Tensor], val: ImageSet) -> np.ndarray:
    model = build_model(config)
    model.load_state_dict(state_dict)
    data = model_data_config(model)
    net = ClassifierWithPreprocess(model, data["mean"], data["std"]).eval()
    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(val.images[val.rows])), 1).numpy()


def test_reporter_can_stop_the_trial(image_sets, tiny_config) -> None:
    train, val = image_sets
    calls: list[int] = []

    def reporter(record: EpochRecord) -> bool:
        calls.append(record.epoch)
        return record.epoch == 2

    result = fit(tiny_config.replace(epochs=5), train, val, reporter=reporter)
    assert result.status == "pruned" and result.reason == "stopped_by_reporter"
    assert calls == [1, 2] and len(result.history) == 2
    assert result.best_epoch in (1, 2) and result.state_dict is not None


def test_early_stopping_with_patience(image_sets, tiny_config) -> None:
    # A learning rate too small to change any prediction: macro-F1 never improves after epoch 1.
    train, val = image_sets
    config = tiny_config.replace(epochs=6, patience=2, lr=1e-12, schedule="constant", warmup_epochs=0.0)
    result = fit(config, train, val)
    assert result.status == "complete" and len(result.history) == 3
    assert result.reason == "early_stopping at epoch 3" and result.best_epoch == 1


def test_nan_loss_ends_the_trial_as_failed(image_sets, tiny_config) -> None:
    train, val = image_sets
    result = fit(tiny_config.replace(lr=1e6, warmup_epochs=0.0), train, val)
    assert result.status == "failed"
    assert result.reason is not None and result.reason.startswith("nan_loss at epoch 1 step ")
    assert result.history == [] and result.state_dict is None and result.best_epoch is None
    assert json.loads(json.dumps(result.to_summary()))["status"] == "failed"


def test_cuda_oom_is_a_failed_result_and_other_errors_propagate(image_sets, tiny_config, monkeypatch) -> None:
    train, val = image_sets

    def out_of_memory(self, logits, target):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(FocalLoss, "forward", out_of_memory)
    result = fit(tiny_config, train, val)
    assert result.status == "failed" and result.reason == "cuda_oom"

    def broken(self, logits, target):
        raise RuntimeError("a bug, not a trial outcome")

    monkeypatch.setattr(FocalLoss, "forward", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        fit(tiny_config, train, val)
    assert not torch.are_deterministic_algorithms_enabled()  # global state restored on the way out


@pytest.mark.parametrize("backbone", ["test_resnet", "test_vit"])
def test_same_config_and_seed_give_the_same_result(image_sets, tiny_config, backbone: str) -> None:
    train, val = image_sets
    config = tiny_config.replace(
        backbone=backbone, augment="bccs", oversample="rare", class_weighting="sqrt_inverse", focal_gamma=2.0,
        label_smoothing=0.1, head="multi", drop_rate=0.2, seed=5,
    )
    first, second = fit(config, train, val, num_workers=0), fit(config, train, val, num_workers=0)
    assert [r.val_macro_f1 for r in first.history] == [r.val_macro_f1 for r in second.history]
    assert [r.train_loss for r in first.history] == [r.train_loss for r in second.history]
    assert first.val_probs is not None and second.val_probs is not None
    assert np.array_equal(first.val_probs, second.val_probs)
    if backbone == "test_resnet":  # the seed matters (checked once, to keep the suite fast)
        other = fit(config.replace(seed=6), train, val, num_workers=0)
        assert other.val_probs is not None and not np.array_equal(first.val_probs, other.val_probs)


def test_trial_learns_the_synthetic_classes(image_sets, tiny_config) -> None:
    train, val = image_sets
    result = fit(tiny_config.replace(epochs=4, lr=1e-2), train, val)
    assert result.status == "complete" and result.best_macro_f1 > 0.3  # chance is ~1/18


def test_validation_covers_an_odd_sized_set(image_sets, tiny_config) -> None:
    train, val = image_sets
    odd = ImageSet(val.images, val.rows[:35], val.labels[:35])
    result = fit(tiny_config.replace(batch_size=16, epochs=1), train, odd)
    assert result.val_probs is not None and result.val_probs.shape == (35, 18)
    assert result.confusion.sum() == 35


def test_unknown_augmentation_fails_before_training(image_sets, tiny_config) -> None:
    train, val = image_sets
    with pytest.raises(ValueError, match="valid names"):
        fit(tiny_config.replace(augment="sparkle"), train, val)


def test_optimizer_groups_and_schedule(tiny_config) -> None:
    config = tiny_config.replace(backbone="test_vit", unfrozen_depth=2, lr=1e-3, backbone_lr_scale=0.1, weight_decay=0.05)
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    names = {id(p): n for n, p in model.net.named_parameters()}
    for group in optimizer.param_groups:
        group_names = [names[id(p)] for p in group["params"]]
        is_head = all(n in model.head_names for n in group_names)
        assert is_head or not any(n in model.head_names for n in group_names)
        assert group["lr"] == pytest.approx(1e-3 if is_head else 1e-4)
        for n, p in zip(group_names, group["params"]):
            assert group["weight_decay"] == (0.05 if p.ndim > 1 and n != "pos_embed" else 0.0), n
    assert sum(len(g["params"]) for g in optimizer.param_groups) == sum(
        p.requires_grad for p in model.parameters()
    )
    warm_cos = lr_lambda(config.replace(epochs=2, warmup_epochs=0.5, schedule="cosine"), steps_per_epoch=10)
    assert [warm_cos(s) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert warm_cos(5) == pytest.approx(1.0) and warm_cos(19) < 0.02
    assert all(warm_cos(s) >= warm_cos(s + 1) for s in range(5, 19))
    constant = lr_lambda(config.replace(schedule="constant", warmup_epochs=0.0), steps_per_epoch=10)
    assert {constant(s) for s in range(20)} == {1.0}


@pytest.mark.parametrize(
    ("name", "kind", "extra"),
    [("adamw", torch.optim.AdamW, {}), ("adam", torch.optim.Adam, {}),
     ("sgd", torch.optim.SGD, {"momentum": 0.9, "nesterov": True})],
)
def test_optimizer_choice(tiny_config, name: str, kind: type, extra: dict) -> None:
    config = tiny_config.replace(optimizer=name, lr=3e-5, backbone_lr_scale=0.5, weight_decay=0.01)
    optimizer = make_optimizer(build_model(config), config)
    assert type(optimizer) is kind
    assert sorted({g["lr"] for g in optimizer.param_groups}) == pytest.approx([1.5e-5, 3e-5])
    assert {g["weight_decay"] for g in optimizer.param_groups} == {0.0, 0.01}
    for key, value in extra.items():
        assert all(g[key] == value for g in optimizer.param_groups)


def test_cosine_restarts_and_step_schedules(tiny_config) -> None:
    restarts = lr_lambda(tiny_config.replace(schedule="cosine_restarts", epochs=6, warmup_epochs=0.0,
                                             restart_epochs=2), steps_per_epoch=5)
    cycle = [restarts(s) for s in range(10)]
    assert cycle[0] == 1.0 and all(a > b for a, b in zip(cycle, cycle[1:])) and cycle[-1] < 0.03
    assert [restarts(s) for s in range(10, 20)] == pytest.approx(cycle)  # restarts at full lr every 2 epochs
    step = lr_lambda(tiny_config.replace(schedule="step", epochs=6, warmup_epochs=1.0, step_epochs=2, lr_decay=0.5),
                     steps_per_epoch=4)
    assert [step(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # warm-up first
    assert [step(s) for s in (4, 7, 8, 15, 16, 23)] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25, 0.25])


def test_plateau_follows_torch_reduce_lr_on_plateau(tiny_config) -> None:
    losses = [1.0, 0.9, 0.95, 0.92, 0.8, 0.8, 0.80001, 0.7, 0.75, 0.76, 0.77]
    for patience in (0, 1, 2):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        reference = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=patience)
        plateau = Plateau(patience, 0.3)
        factor = lr_lambda(tiny_config.replace(schedule="plateau", warmup_epochs=0.0), 10, plateau)
        for loss in losses:
            reference.step(loss)
            plateau.update(loss)
            assert factor(99) == pytest.approx(optimizer.param_groups[0]["lr"]), (patience, loss)
        assert plateau.scale < 1.0


def test_plateau_is_stepped_once_per_epoch_on_the_validation_loss(image_sets, tiny_config, monkeypatch) -> None:
    train, val = image_sets
    seen: list[float] = []
    update = Plateau.update
    monkeypatch.setattr(Plateau, "update", lambda self, loss: (seen.append(loss), update(self, loss))[1])
    config = tiny_config.replace(optimizer="adam", schedule="plateau", lr=3e-4, epochs=3, patience=5)
    result = fit(config, train, val)
    assert result.status == "complete"
    assert seen == [r.val_loss for r in result.history]


def test_keep_last_returns_the_final_epoch_and_never_stops_early(image_sets, tiny_config) -> None:
    # As in test_early_stopping_with_patience, macro-F1 never improves after epoch 1: "best" would
    # stop at epoch 3 and return epoch 1; "last" runs all 5 and returns epoch 5's weights and scores.
    train, val = image_sets
    config = tiny_config.replace(epochs=5, patience=2, lr=1e-12, schedule="constant", warmup_epochs=0.0)
    result = fit(config, train, val, keep="last")
    assert result.status == "complete" and len(result.history) == 5 and result.best_epoch == 5
    assert result.best_macro_f1 == result.history[-1].val_macro_f1
    assert result.val_probs is not None and result.state_dict is not None
    np.testing.assert_allclose(result.val_probs, _predict(config, result.state_dict, val), atol=1e-5)
    with pytest.raises(ValueError, match="keep must be one of"):
        fit(config, train, val, keep="first")


def test_keep_best_also_returns_the_last_epoch_when_it_was_not_the_best(image_sets, tiny_config) -> None:
    # Early stopping after epoch 3 returns epoch 1 as the best; the last epoch (3) comes back apart,
    # the same weights and probabilities as a keep="last" run of 3 epochs (a seeded CPU run repeats).
    train, val = image_sets
    config = tiny_config.replace(epochs=5, patience=2, lr=1e-12, schedule="constant", warmup_epochs=0.0)
    result = fit(config, train, val)
    assert result.best_epoch == 1 and len(result.history) == 3
    assert result.last_val_probs is not None and result.last_state_dict is not None
    last = fit(config.replace(epochs=3), train, val, keep="last")
    np.testing.assert_allclose(result.last_val_probs, last.val_probs, atol=1e-6)
    np.testing.assert_allclose(result.last_val_probs, _predict(config, result.last_state_dict, val), atol=1e-5)
    assert last.last_val_probs is None and last.last_state_dict is None  # its last epoch is the one kept


def test_validating_only_the_kept_epoch_gives_the_same_model_and_scores(image_sets, tiny_config) -> None:
    """keep="last" with validate_every_epoch=False (a refit's fold model): the same seeded run, its
    last epoch's weights and held-out probabilities as when every epoch validates; the epochs before
    carry NaN scores; stopped after epoch 2 by its reporter, that epoch is validated and kept."""
    train, val = image_sets
    config = tiny_config.replace(epochs=3, schedule="constant", warmup_epochs=0.0)
    every = fit(config, train, val, keep="last")
    once = fit(config, train, val, keep="last", validate_every_epoch=False)
    assert once.status == "complete" and once.best_epoch == 3
    assert [math.isnan(r.val_macro_f1) for r in once.history] == [True, True, False]
    assert once.history[-1].val_macro_f1 == every.history[-1].val_macro_f1 == once.best_macro_f1
    np.testing.assert_allclose(once.val_probs, every.val_probs, atol=1e-6)
    stopped = fit(config, train, val, reporter=lambda r: r.epoch == 2, keep="last", validate_every_epoch=False)
    assert stopped.status == "pruned" and stopped.best_epoch == 2 and len(stopped.history) == 2
    assert math.isnan(stopped.history[0].val_macro_f1) and stopped.history[1].val_macro_f1 == stopped.best_macro_f1
    assert stopped.history[1].val_seconds > 0 and stopped.history[1].val_seconds < stopped.history[1].seconds
    np.testing.assert_allclose(stopped.val_probs, _predict(config, stopped.state_dict, val), atol=1e-5)
    assert once.to_summary()["history"][0]["val_macro_f1"] is None  # NaN scores are None in the JSON summary
    with pytest.raises(ValueError, match='needs keep="last"'):
        fit(config, train, val, validate_every_epoch=False)


def test_a_plateau_schedule_validates_every_epoch_whatever_it_is_asked(image_sets, tiny_config) -> None:
    train, val = image_sets
    config = tiny_config.replace(optimizer="adam", schedule="plateau", lr=3e-4, epochs=2, patience=5)
    result = fit(config, train, val, keep="last", validate_every_epoch=False)
    assert all(math.isfinite(r.val_loss) for r in result.history)
