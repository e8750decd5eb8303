"""HOW one trial runs: model factory, losses, augmentation sets, the training loop, devices.

``fit(config, train, val, reporter) -> TrialResult``. No optuna here, and nothing from
``search`` or ``spaces``. Importing this package loads nothing: each name below loads its module
on first use (the built-in augmentation sets register when ``runners.augmentations`` loads).
"""

from __future__ import annotations

import importlib
from typing import Any

# Every name loads on first use, so that importing one light module (runners.classes, which the
# data layer and the bundle use) does not pull in torch, timm or the training loop.
_LAZY = {
    "TrialConfig": "runners.config",
    "autocast_dtype": "runners.devices",
    "default_num_workers": "runners.devices",
    "resolve_device": "runners.devices",
    "FocalLoss": "runners.losses",
    "class_weights": "runners.losses",
    "oversample_weights": "runners.losses",
    "NUM_CLASSES": "runners.classes",
    "ClassificationMetrics": "runners.metrics",
    "classification_metrics": "runners.metrics",
    "ClassifierWithPreprocess": "runners.models",
    "ClassScores": "runners.models",
    "TrialModel": "runners.models",
    "apply_unfrozen_depth": "runners.models",
    "build_model": "runners.models",
    "count_parameters": "runners.models",
    "count_stages": "runners.models",
    "model_data_config": "runners.models",
    "stage_groups": "runners.models",
    "HEADS": "runners.heads",
    "Head": "runners.heads",
    "EpochRecord": "runners.results",
    "TrialResult": "runners.results",
    "WeightsError": "runners.weights",
    "create_backbone": "runners.weights",
    "find_weights_file": "runners.weights",
    "packaged_file": "runners.weights",
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
    "ClassScores",
    "ClassificationMetrics",
    "ClassifierWithPreprocess",
    "DeviceAugment",
    "EpochRecord",
    "FocalLoss",
    "HEADS",
    "Head",
    "ImageSet",
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
    "lr_lambda",
    "make_loader",
    "make_optimizer",
    "model_data_config",
    "oversample_weights",
    "packaged_file",
    "register_augment",
    "resolve_device",
    "stage_groups",
]
