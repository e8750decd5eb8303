"""Grad-CAM (Selvaraju et al. 2017) for a trial's model: where in the photo the class score came from.

The gradient of the class score with respect to the backbone's last feature map, averaged over
space, weights that map's channels; their sum through a ReLU, scaled to [0, 1] and resized to
the input, is the map. The feature map is timm's ``forward_features`` output, so every backbone
works alike: convolutional maps (NCHW, or NHWC as Swin gives) and ViT tokens (prefix tokens
dropped, the rest laid on the patch grid).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# "jet" as five anchors (blue, cyan, green, yellow, red) for 0, .25, .5, .75, 1
_JET = np.array([[0, 0, 143], [0, 143, 255], [80, 255, 175], [255, 223, 0], [191, 0, 0]], dtype=np.float32)


def _spatial(feats: torch.Tensor, net: Any) -> torch.Tensor:
    """``forward_features`` output as (N, C, h, w)."""
    channels = getattr(net, "num_features", None)
    if feats.ndim == 4:
        if channels is not None and feats.shape[-1] == channels and feats.shape[1] != channels:
            return feats.permute(0, 3, 1, 2)  # NHWC (Swin and friends)
        return feats
    if feats.ndim == 3:  # tokens (N, L, C)
        tokens = feats[:, int(getattr(net, "num_prefix_tokens", 0) or 0):]
        grid = getattr(getattr(net, "patch_embed", None), "grid_size", None)
        h, w = (int(grid[0]), int(grid[1])) if grid else (int(round(tokens.shape[1] ** 0.5)),) * 2
        if h * w == tokens.shape[1]:
            return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)
    raise ValueError(f"{type(net).__name__} gives features of shape {tuple(feats.shape)}: no spatial map for Grad-CAM.")


def grad_cam(classifier: Any, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Maps (N, H, W) float32 in [0, 1] of ``targets`` (class per image) for uint8 (N, H, W, 3) ``images``.

    ``classifier`` is a ``runners.models.ClassifierWithPreprocess`` (what the bundle and
    ``search.deploy.graph.build_checkpoint`` build) around a ``TrialModel``.
    """
    model = classifier.model
    net = model.net
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(torch.float32)
    x = (x * classifier.scale - classifier.shift).requires_grad_(True)  # so a frozen backbone still has gradients
    with torch.enable_grad():
        raw = net.forward_features(x)
        logits = model.combine(net.forward_head(raw))
        picked = logits.gather(1, torch.as_tensor(targets, dtype=torch.int64).view(-1, 1)).sum()
        (raw_grads,) = torch.autograd.grad(picked, raw)
    feats, grads = _spatial(raw.detach(), net), _spatial(raw_grads, net)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * feats).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=images.shape[1:3], mode="bilinear", align_corners=False)[:, 0]
    top = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return (cam / top).numpy().astype(np.float32)


def colorize(cam: np.ndarray) -> np.ndarray:
    """A [0, 1] map as uint8 RGB on the "jet" scale (blue low, red high)."""
    pos = np.clip(cam, 0.0, 1.0) * (len(_JET) - 1)
    lo = np.minimum(pos.astype(np.int64), len(_JET) - 2)
    frac = (pos - lo)[..., None]
    return (_JET[lo] * (1 - frac) + _JET[lo + 1] * frac).astype(np.uint8)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the colourised map blended in."""
    return (image.astype(np.float32) * (1 - alpha) + colorize(cam).astype(np.float32) * alpha).round().astype(np.uint8)
