"""Augmentation sets run on the training device, a whole batch at a time.

The sets stay defined once, as albumentations pipelines (runners.augmentations). This module
reads each transform's settings and runs the same operation batched in torch (runners.image_ops)
on the batch that already sits on the device, so on a GPU the CPU only gathers cached rows: it
no longer caps the images/s a GPU can train on. Each transform fires per image with its own
probability, in the set's order, as albumentations does; parameters are drawn from a seeded CPU
generator, so a trial draws the same augmentations on CPU and GPU.

A transform with no batched version here raises ``NoDeviceVersion`` when the set is built; the
training loop then keeps that set on the loader's worker processes (``augment_on="auto"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import albumentations as A
import cv2
import torch

from runners import image_ops as ops
from runners.augmentations import get_augment

Params = dict[str, torch.Tensor]


class NoDeviceVersion(ValueError):
    """The set holds a transform, or a setting of one, that only runs in albumentations."""


@dataclass(frozen=True)
class DeviceStep:
    name: str
    p: float
    sample: Callable[[int, torch.Generator], Params]  # parameters of n images, drawn on the CPU
    apply: Callable[[torch.Tensor, Params], torch.Tensor]  # float NCHW [0, 255] -> same


class DeviceAugment:
    """``augment(uint8 NHWC batch) -> float32 NCHW batch in [0, 255]``, the named set applied on the
    batch's device; the model's preprocessing normalises it from there."""

    def __init__(self, steps: list[DeviceStep], seed: int = 0) -> None:
        self.steps = steps
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: torch.Tensor, only: torch.Tensor | None = None) -> torch.Tensor:
        """``only``: host bool flags, one per image; the others pass through unchanged."""
        x = batch.permute(0, 3, 1, 2).float()
        n = x.shape[0]
        if only is not None and tuple(only.shape) != (n,):
            raise ValueError(f"only must hold one flag per image ({n}) but has shape {tuple(only.shape)}.")
        for step in self.steps:
            fires = torch.rand(n, generator=self.generator) < step.p
            chosen = (fires if only is None else fires & only.cpu()).nonzero().flatten()
            if len(chosen) == 0:
                continue
            params = {k: v.to(x.device) for k, v in step.sample(len(chosen), self.generator).items()}
            if len(chosen) == n:
                x = step.apply(x, params)
            else:
                rows = chosen.to(x.device)
                x[rows] = step.apply(x[rows], params)
        return x


def device_augment(name: str, height: int, width: int, seed: int = 0) -> DeviceAugment:
    """The named set, for ``height`` x ``width`` batches, run on their device; ``NoDeviceVersion`` when
    one of its transforms has no batched version."""
    compose = get_augment(name, height, width)
    steps = []
    for transform in compose.transforms:
        translate = _TRANSLATORS.get(type(transform))
        if translate is None:
            raise NoDeviceVersion(
                f"augmentation set {name!r}: {type(transform).__name__} has no batched device version; "
                "the set runs on the loader's worker processes instead."
            )
        steps.append(translate(transform, height, width))
    return DeviceAugment(steps, seed)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen, dtype=torch.float64) * (high - low) + low


def _require(condition: bool, t: A.BasicTransform, setting: str) -> None:
    if not condition:
        raise NoDeviceVersion(f"{type(t).__name__} with {setting} has no batched device version.")


def _flip(t: A.HorizontalFlip, h: int, w: int) -> DeviceStep:
    return DeviceStep("HorizontalFlip", t.p, lambda n, g: {}, lambda x, p: x.flip(-1))


def _brightness_contrast(t: A.RandomBrightnessContrast, h: int, w: int) -> DeviceStep:
    _require(not t.ensure_safe_range, t, "ensure_safe_range")

    def sample(n: int, g: torch.Generator) -> Params:
        return {"alpha": 1 + _uniform(n, *t.contrast_limit, g), "beta": _uniform(n, *t.brightness_limit, g)}

    def apply(x: torch.Tensor, p: Params) -> torch.Tensor:
        scale = 255.0 if t.brightness_by_max else x.mean((1, 2, 3))
        return ops.brightness_contrast(x, p["alpha"].float(), p["beta"].float() * scale)

    return DeviceStep("RandomBrightnessContrast", t.p, sample, apply)


def _clahe(t: A.CLAHE, h: int, w: int) -> DeviceStep:
    tiles = tuple(int(v) for v in t.tile_grid_size)
    return DeviceStep(
        "CLAHE",
        t.p,
        lambda n, g: {"clip": _uniform(n, *t.clip_limit, g)},
        lambda x, p: ops.clahe(x, p["clip"].float(), (tiles[0], tiles[1])),
    )


def _affine(t: A.Affine, h: int, w: int) -> DeviceStep:
    _require(not t.fit_output, t, "fit_output")
    _require(not t.balanced_scale, t, "balanced_scale")
    _require(t.interpolation == cv2.INTER_LINEAR, t, f"interpolation {t.interpolation}")
    _require(t.border_mode == cv2.BORDER_CONSTANT and t.fill == 0, t, "a border other than constant black")

    def sample(n: int, g: torch.Generator) -> Params:
        if t.translate_px is not None:
            move = [torch.randint(int(lo), int(hi) + 1, (n,), generator=g).double() for lo, hi in t.translate_px.values()]
        else:  # fractions of the size, truncated to whole pixels as albumentations does
            move = [(_uniform(n, *t.translate_percent[k], g) * size).trunc() for k, size in (("x", w), ("y", h))]
        scale = [_uniform(n, *t.scale[k], g) for k in ("x", "y")]
        if t.keep_ratio:
            scale[1] = scale[0]
        rotate = _uniform(n, *t.rotate, g)
        shear = [_uniform(n, *t.shear[k], g) for k in ("x", "y")]
        matrix = ops.affine_matrix(torch.stack(move, 1), torch.stack(scale, 1), rotate, torch.stack(shear, 1), h, w)
        return {"matrix": matrix, "theta": ops.sampling_theta(matrix, h, w)}

    return DeviceStep("Affine", t.p, sample, lambda x, p: ops.warp(x, p["theta"]))


def _resized_crop(t: A.RandomResizedCrop, h: int, w: int) -> DeviceStep:
    _require(tuple(t.size) == (h, w), t, f"size {t.size} other than the trial's {h}x{w}")
    _require(t.interpolation == cv2.INTER_LINEAR, t, f"interpolation {t.interpolation}")

    def sample(n: int, g: torch.Generator) -> Params:
        area = _uniform(n, t.scale[0] * h * w, t.scale[1] * h * w, g)
        ratio = torch.exp(_uniform(n, math.log(t.ratio[0]), math.log(t.ratio[1]), g))
        crop_w = torch.sqrt(area * ratio).round().clamp(1, w)
        crop_h = torch.sqrt(area / ratio).round().clamp(1, h)
        top = ((h - crop_h + 1) * torch.rand(n, generator=g, dtype=torch.float64)).floor()
        left = ((w - crop_w + 1) * torch.rand(n, generator=g, dtype=torch.float64)).floor()
        matrix = ops.crop_matrix(torch.stack([left, top, left + crop_w, top + crop_h], 1), h, w)
        return {"theta": ops.sampling_theta(matrix, h, w)}

    return DeviceStep("RandomResizedCrop", t.p, sample, lambda x, p: ops.warp(x, p["theta"]))


def _to_gray(t: A.ToGray, h: int, w: int) -> DeviceStep:
    _require(t.method == "weighted_average" and t.num_output_channels == 3, t, f"method {t.method!r}")
    return DeviceStep("ToGray", t.p, lambda n, g: {}, lambda x, p: ops.to_gray(x))


def _auto_contrast(t: A.AutoContrast, h: int, w: int) -> DeviceStep:
    _require(t.cutoff == 0 and t.ignore is None, t, "cutoff or ignore")
    return DeviceStep("AutoContrast", t.p, lambda n, g: {}, lambda x, p: ops.auto_contrast(x, t.method))


def _sharpen(t: A.Sharpen, h: int, w: int) -> DeviceStep:
    _require(t.method == "kernel", t, f"method {t.method!r}")
    return DeviceStep(
        "Sharpen",
        t.p,
        lambda n, g: {"alpha": _uniform(n, *t.alpha, g), "lightness": _uniform(n, *t.lightness, g)},
        lambda x, p: ops.sharpen(x, p["alpha"].float(), p["lightness"].float()),
    )


def _gamma(t: A.RandomGamma, h: int, w: int) -> DeviceStep:
    return DeviceStep(
        "RandomGamma",
        t.p,
        lambda n, g: {"gamma": _uniform(n, *t.gamma_limit, g) / 100},
        lambda x, p: ops.gamma(x, p["gamma"].float()),
    )


def _coarse_dropout(t: A.CoarseDropout, h: int, w: int) -> DeviceStep:
    _require(isinstance(t.fill, (int, float)), t, f"fill {t.fill!r}")
    most = int(t.num_holes_range[1])

    def sizes(n: int, bounds: tuple[float, float], size: int, g: torch.Generator) -> torch.Tensor:
        if bounds[1] >= 1:  # pixels, as albumentations reads the range
            return torch.randint(int(bounds[0]), int(min(bounds[1], size)) + 1, (n, most), generator=g)
        return (size * _uniform(n * most, *bounds, g).view(n, most)).long()

    def sample(n: int, g: torch.Generator) -> Params:
        holes = torch.randint(int(t.num_holes_range[0]), most + 1, (n, 1), generator=g)
        hole_h, hole_w = sizes(n, t.hole_height_range, h, g), sizes(n, t.hole_width_range, w, g)
        top = ((h - hole_h + 1) * torch.rand(n, most, generator=g)).long()
        left = ((w - hole_w + 1) * torch.rand(n, most, generator=g)).long()
        boxes = torch.stack([left, top, left + hole_w, top + hole_h], -1)
        return {"boxes": boxes, "active": torch.arange(most).view(1, -1) < holes}

    return DeviceStep("CoarseDropout", t.p, sample, lambda x, p: ops.erase_boxes(x, p["boxes"], p["active"], float(t.fill)))


_TRANSLATORS: dict[type, Callable[..., DeviceStep]] = {
    A.HorizontalFlip: _flip,
    A.RandomBrightnessContrast: _brightness_contrast,
    A.CLAHE: _clahe,
    A.Affine: _affine,
    A.RandomResizedCrop: _resized_crop,
    A.ToGray: _to_gray,
    A.AutoContrast: _auto_contrast,
    A.Sharpen: _sharpen,
    A.RandomGamma: _gamma,
    A.CoarseDropout: _coarse_dropout,
}
