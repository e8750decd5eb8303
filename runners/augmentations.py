"""Named augmentation sets: albumentations pipelines on uint8 HWC images of the trial's size.

Every set maps an (H, W, 3) uint8 image to an (H, W, 3) uint8 image. The sets follow the
teams' reports (docs/domain.md); none of them uses the transforms that hurt there (ColorJitter,
RandomPerspective, GridDistortion, ElasticTransform, RandomFog, Blur). Validation never goes
through any set: the training loop only applies them to training batches.

Preview what a set does with ``python -m runners.augment`` (that CLI lives apart from this
registry so running it does not import the module twice).
"""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A
import cv2

AugmentFactory = Callable[[int, int], A.Compose]
AUGMENT_SETS: dict[str, AugmentFactory] = {}


def register_augment(name: str) -> Callable[[AugmentFactory], AugmentFactory]:
    """Decorator adding a factory ``(height, width) -> A.Compose`` under ``name``."""

    def decorate(factory: AugmentFactory) -> AugmentFactory:
        if name in AUGMENT_SETS:
            raise ValueError(f"augmentation set {name!r} is already registered.")
        AUGMENT_SETS[name] = factory
        return factory

    return decorate


def list_augment_sets() -> list[str]:
    return sorted(AUGMENT_SETS)


def get_augment(name: str, height: int, width: int, seed: int | None = None) -> A.Compose:
    """Build the named set for images of ``height`` x ``width``; ``seed`` fixes its random stream."""
    if name not in AUGMENT_SETS:
        raise ValueError(f"Unknown augmentation set {name!r}; valid names are {list_augment_sets()}.")
    compose = AUGMENT_SETS[name](height, width)
    compose.set_random_seed(seed)
    return compose


def _affine(shift: float, scale: float, rotate: float, p: float) -> A.Affine:
    # ShiftScaleRotate's successor in albumentations 2; constant black border like a photo edge.
    return A.Affine(
        translate_percent=(-shift, shift),
        scale=(1.0 - scale, 1.0 + scale),
        rotate=(-rotate, rotate),
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        p=p,
    )


def _crop(height: int, width: int, min_scale: float, p: float) -> A.RandomResizedCrop:
    ratio = width / height  # keep the face's aspect ratio: crops only zoom, never stretch
    return A.RandomResizedCrop(size=(height, width), scale=(min_scale, 1.0), ratio=(ratio, ratio), p=p)


@register_augment("none")
def _none(height: int, width: int) -> A.Compose:
    return A.Compose([])


@register_augment("flip")
def _flip(height: int, width: int) -> A.Compose:
    return A.Compose([A.HorizontalFlip(p=0.5)])


@register_augment("bccs")
def _bccs(height: int, width: int) -> A.Compose:
    """Brightness/contrast, CLAHE, shift-scale-rotate and flip (team A)."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.5),
            A.CLAHE(clip_limit=2.0, tile_grid_size=(8, 8), p=0.3),
            _affine(shift=0.0625, scale=0.1, rotate=15.0, p=0.5),
        ]
    )


@register_augment("gray_sharp")
def _gray_sharp(height: int, width: int) -> A.Compose:
    """Grayscale copies, autocontrast, sharpening and conservative crops (team B)."""
    return A.Compose(
        [
            _crop(height, width, min_scale=0.85, p=0.5),
            A.ToGray(num_output_channels=3, p=0.2),
            A.AutoContrast(p=0.3),
            A.Sharpen(alpha=(0.1, 0.3), lightness=(0.9, 1.0), p=0.3),
        ]
    )


@register_augment("strong")
def _strong(height: int, width: int) -> A.Compose:
    """Everything above, harder, plus gamma and small occlusions; still face-safe."""
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            _crop(height, width, min_scale=0.7, p=0.5),
            _affine(shift=0.08, scale=0.1, rotate=20.0, p=0.6),
            A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=0.6),
            A.RandomGamma(gamma_limit=(80, 120), p=0.3),
            A.CLAHE(clip_limit=3.0, tile_grid_size=(8, 8), p=0.3),
            A.ToGray(num_output_channels=3, p=0.15),
            A.Sharpen(alpha=(0.1, 0.4), lightness=(0.8, 1.0), p=0.3),
            A.CoarseDropout(num_holes_range=(1, 3), hole_height_range=(0.05, 0.15), hole_width_range=(0.05, 0.15), p=0.3),
        ]
    )
