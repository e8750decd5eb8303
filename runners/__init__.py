"""HOW one trial runs: model factory, losses, augmentation sets, the training loop, devices.

``fit(config, train, val, reporter) -> TrialResult``. No optuna here, and nothing from
``search`` or ``spaces``; importing this package has no side effects beyond registering the
built-in augmentation sets.
"""

from __future__ import annotations

import importlib
from typing import Any

from runners.config import TrialConfig
from runners.devices import autocast_dtype, default_num_workers, resolve_device
from runners.losses import FocalLoss, class_weights, oversample_weights
from runners.metrics import NUM_CLASSES, ClassificationMetrics, classification_metrics
from runners.models import (
    ClassifierWithPreprocess,
    MultiHeadCombine,
    TrialModel,
    apply_unfrozen_depth,
    build_model,
    count_parameters,
    count_stages,
    model_data_config,
    stage_groups,
)
from runners.results import EpochRecord, TrialResult
from runners.weights import WeightsError, create_backbone, find_weights_file, lite0_package_file

# The training side (loop, loaders, albumentations) loads on first use, so that inference code
# (search.bundle) can build models from ``runners.models`` without importing it.
_LAZY = {
    "fit": "runners.training",
    "lr_lambda": "runners.training",
    "make_optimizer": "runners.training",
    "BatchGather": "runners.batches",
    "ImageSet": "runners.batches",
    "device_batches": "runners.batches",
    "make_loader": "runners.batches",
    "DeviceAugment": "runners.device_augment",
    "NoDeviceVersion": "runners.device_augment",
    "device_augment": "runners.device_augment",
    "AUGMENT_SETS": "runners.augmentations",
    "get_augment": "runners.augmentations",
    "list_augment_sets": "runners.augmentations",
    "register_augment": "runners.augmentations",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # cache it, so later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'runners' has no attribute {name!r}")


__all__ = [
    "AUGMENT_SETS",
    "NUM_CLASSES",
    "BatchGather",
    "ClassificationMetrics",
    "ClassifierWithPreprocess",
    "DeviceAugment",
    "EpochRecord",
    "FocalLoss",
    "ImageSet",
    "MultiHeadCombine",
    "NoDeviceVersion",
    "TrialConfig",
    "TrialModel",
    "TrialResult",
    "WeightsError",
    "apply_unfrozen_depth",
    "autocast_dtype",
    "build_model",
    "class_weights",
    "classification_metrics",
    "count_parameters",
    "count_stages",
    "create_backbone",
    "default_num_workers",
    "device_augment",
    "device_batches",
    "find_weights_file",
    "fit",
    "get_augment",
    "list_augment_sets",
    "lite0_package_file",
    "lr_lambda",
    "make_loader",
    "make_optimizer",
    "model_data_config",
    "oversample_weights",
    "register_augment",
    "resolve_device",
    "stage_groups",
]
