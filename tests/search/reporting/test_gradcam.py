from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from runners.config import TrialConfig
from runners.models import ClassifierWithPreprocess, build_model, model_data_config
from search.reporting.gradcam import colorize, grad_cam, overlay


def _classifier(backbone: str, size: tuple[int, int], **changes: object) -> ClassifierWithPreprocess:
    torch.manual_seed(0)
    model = build_model(TrialConfig(backbone=backbone, height=size[0], width=size[1], pretrained=False, **changes))
    data = model_data_config(model)
    return ClassifierWithPreprocess(model, data["mean"], data["std"]).eval()


def test_on_a_pooled_linear_head_grad_cam_is_the_class_activation_map() -> None:
    """With global average pooling then one linear layer, Grad-CAM's channel weights are the class's
    classifier row over h*w, so the map is Zhou et al.'s CAM: relu(sum_c W[class, c] F_c), scaled."""
    clf = _classifier("test_resnet", (128, 96))  # a 4x3 feature map
    with torch.no_grad():  # timm starts this classifier at zero, which would make every map zero
        clf.model.net.get_classifier().weight.normal_()
    images = np.random.default_rng(0).integers(0, 256, (3, 128, 96, 3), dtype=np.uint8)
    targets = np.array([0, 7, 17])
    cams = grad_cam(clf, images, targets)
    net = clf.model.net
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() * clf.scale - clf.shift
        feats = net.forward_features(x)
        weights = net.get_classifier().weight[torch.as_tensor(targets)]
        expected = F.relu(torch.einsum("nc,nchw->nhw", weights, feats))[:, None]
        expected = F.interpolate(expected, size=(128, 96), mode="bilinear", align_corners=False)[:, 0]
        expected = expected / expected.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    assert cams.shape == (3, 128, 96) and cams.dtype == np.float32
    np.testing.assert_allclose(cams, expected.numpy(), atol=1e-4)
    assert cams.max() == pytest.approx(1.0) and cams.min() >= 0.0
    assert not np.allclose(cams[0], grad_cam(clf, images[:1], np.array([1]))[0])  # another class, another map


def test_a_frozen_backbone_and_a_three_head_model_still_get_a_map() -> None:
    clf = _classifier("test_efficientnet", (32, 24), unfrozen_depth=0, head="multi")
    with torch.no_grad():
        clf.model.net.get_classifier().weight.normal_()
    images = np.random.default_rng(1).integers(0, 256, (2, 32, 24, 3), dtype=np.uint8)
    cams = grad_cam(clf, images, np.array([3, 12]))
    assert cams.shape == (2, 32, 24) and np.isfinite(cams).all() and cams.max() > 0


def test_colours_run_from_blue_to_red_and_the_overlay_blends() -> None:
    ends = colorize(np.array([[0.0, 1.0]]))
    assert tuple(ends[0, 0]) == (0, 0, 143) and tuple(ends[0, 1]) == (191, 0, 0)
    image = np.full((2, 2, 3), 200, np.uint8)
    blended = overlay(image, np.zeros((2, 2), np.float32), alpha=0.5)
    assert tuple(blended[0, 0]) == (100, 100, 172)
