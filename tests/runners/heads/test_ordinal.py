"""The ordinal age head: rank-consistent cumulative logits, band probabilities, CORAL's loss,
training from the real ages, and the same probabilities from torch and onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from runners import ImageSet, TrialConfig, build_model, fit
from runners.classes import age_band
from runners.heads import HEADS
from runners.heads.ordinal import AGE_MAX, NUM_AGE_UNITS, NUM_ORDINAL_OUTPUTS, THRESHOLDS, age_index
from runners.models import ClassScores
from tests.runners.conftest import SIZE


def _ordinal(cutoff: int) -> ClassScores:
    return ClassScores(HEADS.get("ordinal"), cutoff)


def _logits(n: int, scale: float, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, NUM_ORDINAL_OUTPUTS, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("scale", [0.0, 1.0, 30.0])
def test_class_probabilities_sum_to_one_and_factor_into_mask_gender_and_bands(scale: float) -> None:
    combine = _ordinal(60)
    logits = _logits(64, scale)
    probs = torch.softmax(combine(logits), 1)
    torch.testing.assert_close(probs.sum(1), torch.ones(64))
    torch.testing.assert_close(combine(logits).exp().sum(1), torch.ones(64))  # the scores are log-probs already
    joint = probs.view(64, 3, 2, 3)  # class = mask * 6 + gender * 3 + band
    torch.testing.assert_close(joint.sum((2, 3)), torch.softmax(logits[:, :3], 1))
    torch.testing.assert_close(joint.sum((1, 3)), torch.softmax(logits[:, 3:5], 1))
    z = combine.age_logits(logits)
    at_30, at_60 = torch.sigmoid(z[:, age_index(30)]), torch.sigmoid(z[:, age_index(60)])
    bands = torch.stack([1 - at_30, at_30 - at_60, at_60], 1)
    torch.testing.assert_close(joint.sum((1, 2)), bands, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_cumulative_logits_never_rise_with_age(scale: float) -> None:
    z = _ordinal(60).age_logits(_logits(128, scale, seed=1))
    assert z.shape == (128, NUM_AGE_UNITS) and torch.isfinite(z).all()
    assert (z[:, 1:] <= z[:, :-1]).all()  # P(age >= t) never rises with t: rank consistency


def test_the_old_band_starts_at_the_cutoff() -> None:
    logits = _logits(32, 2.0, seed=2)
    old = {c: torch.softmax(_ordinal(c)(logits), 1)[:, 2::3].sum(1) for c in (58, 59, 60)}
    z = _ordinal(60).age_logits(logits)
    for cutoff, p_old in old.items():
        torch.testing.assert_close(p_old, torch.sigmoid(z[:, age_index(cutoff)]))
    assert (old[58] >= old[59]).all() and (old[59] >= old[60]).all() and (old[58] > old[60]).any()
    with pytest.raises(ValueError, match="19..65"):
        _ordinal(AGE_MAX + 1)


def test_zero_output_starts_from_an_even_spread_of_ages() -> None:
    p = torch.sigmoid(_ordinal(60).age_logits(torch.zeros(1, NUM_ORDINAL_OUTPUTS)))[0]
    assert p[age_index(19)] > 0.9 and 0.6 < p[age_index(30)] < 0.8 and p[age_index(60)] < 0.05


def test_the_head_is_registered_with_its_outputs_and_learns_age() -> None:
    head = HEADS.get("ordinal")
    assert head.outputs == NUM_ORDINAL_OUTPUTS == 3 + 2 + NUM_AGE_UNITS and head.learns_age


def test_the_age_loss_is_coral_on_the_real_ages() -> None:
    loss = _ordinal(60).age_loss
    z = torch.randn(5, NUM_AGE_UNITS)
    ages = torch.tensor([18, 29, 45, 60, 80])  # 80 counts as AGE_MAX
    target = (np.minimum(ages.numpy(), AGE_MAX)[:, None] >= THRESHOLDS[None, :]).astype(np.float32)
    expected = F.binary_cross_entropy_with_logits(z, torch.from_numpy(target))
    torch.testing.assert_close(loss(z, ages), expected)
    # logits that say "old" cost little for a 60-year-old and much for a 20-year-old
    old = torch.full((1, NUM_AGE_UNITS), 5.0)
    assert loss(old, torch.tensor([60])) < 0.2 * loss(old, torch.tensor([20]))


def _aged(image_set: ImageSet, seed: int) -> ImageSet:
    """The set with a real age per row that matches its class's age band (60 for the old band)."""
    rng = np.random.default_rng(seed)
    band = image_set.labels % 3
    ages = np.where(band == 0, rng.integers(18, 30, len(band)), np.where(band == 1, rng.integers(30, 60, len(band)), 60))
    assert (age_band(ages) == band).all()
    return ImageSet(image_set.images, image_set.rows, image_set.labels, ages)


def test_an_ordinal_trial_learns_from_the_real_ages(image_sets, tiny_config: TrialConfig) -> None:
    train, val = image_sets
    config = tiny_config.replace(head="ordinal", epochs=4, lr=1e-2, age_cutoff=59, age_loss_weight=2.0)
    result = fit(config, _aged(train, 0), val)
    assert result.status == "complete" and result.best_macro_f1 > 0.3  # chance is ~1/18
    assert result.val_probs is not None
    np.testing.assert_allclose(result.val_probs.sum(1), 1.0, atol=1e-5)
    again = fit(config, _aged(train, 0), val)
    assert np.array_equal(result.val_probs, again.val_probs)
    # the age term is part of the training loss: another weight trains another model
    other = fit(config.replace(age_loss_weight=0.0), _aged(train, 0), val)
    assert other.history[0].train_loss != result.history[0].train_loss


def test_oversampled_copies_carry_their_ages(image_sets, tiny_config: TrialConfig) -> None:
    train, val = image_sets
    config = tiny_config.replace(head="ordinal", epochs=1, oversample="old", augment="flip",
                                 augment_scope="oversampled")
    assert fit(config, _aged(train, 1), val, num_workers=0).status == "complete"


def test_an_ordinal_trial_without_ages_is_refused_before_training(image_sets, tiny_config: TrialConfig) -> None:
    train, val = image_sets
    with pytest.raises(ValueError, match="head 'ordinal' learns age from the people's real ages"):
        fit(tiny_config.replace(head="ordinal"), train, val)
    with pytest.raises(ValueError, match=r"train.ages must hold one age per row"):
        fit(tiny_config.replace(head="ordinal"), ImageSet(train.images, train.rows, train.labels, [30]), val)


def test_torch_and_onnxruntime_give_the_same_probabilities(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from safetensors.torch import save_file

    from search.deploy.graph import build_checkpoint, build_ensemble, export_onnx, onnx_predict, onnx_session

    torch.manual_seed(0)
    config = TrialConfig(backbone="test_efficientnet", head="ordinal", age_cutoff=58, height=SIZE, width=SIZE)
    model = build_model(config)
    with torch.no_grad():  # large age units: steep cumulative logits, the numerically hard case
        model.net.get_classifier().weight.mul_(40.0)
    path = tmp_path / "member.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    member, _, _ = build_checkpoint(config.to_dict(), path)
    net = build_ensemble([member], [1.0], offsets=[0.0, 0.0, 1.0] * 6)
    export_onnx(net, tmp_path / "ensemble.onnx", SIZE, SIZE)
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8))
    got = onnx_predict(onnx_session(tmp_path / "ensemble.onnx"), x.numpy())
    with torch.no_grad():
        expected = net(x).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
