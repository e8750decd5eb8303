"""HOW one trial runs: model factory, losses, augmentation sets, the training loop, devices.

``fit(config, train, val, reporter) -> TrialResult``. No optuna here, and nothing from
``search`` or ``spaces``; importing this package has no side effects beyond registering the
built-in augmentation sets.
"""

from __future__ import annotations

from runners.augmentations import AUGMENT_SETS, get_augment, list_augment_sets, register_augment
from runners.batches import BatchGather, ImageSet, device_batches, make_loader
from runners.config import TrialConfig
from runners.devices import autocast_dtype, default_num_workers, resolve_device
from runners.fit import fit, lr_lambda, make_optimizer
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

__all__ = [
    "AUGMENT_SETS",
    "NUM_CLASSES",
    "BatchGather",
    "ClassificationMetrics",
    "ClassifierWithPreprocess",
    "EpochRecord",
    "FocalLoss",
    "ImageSet",
    "MultiHeadCombine",
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
    "device_batches",
    "find_weights_file",
    "fit",
    "get_augment",
    "lite0_package_file",
    "list_augment_sets",
    "lr_lambda",
    "make_loader",
    "make_optimizer",
    "model_data_config",
    "oversample_weights",
    "register_augment",
    "resolve_device",
    "stage_groups",
]
