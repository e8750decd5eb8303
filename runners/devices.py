"""Device choice, mixed precision and data-loader worker counts for one trial."""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)

NUM_WORKERS_ENV = "MASK_AUTOML_LOADER_WORKERS"  # overrides the default loader worker count
AUGMENT_ON_ENV = "MASK_AUTOML_AUGMENT_ON"  # overrides where augmentation runs: auto, loader or device
AUGMENT_PLACES = ("auto", "loader", "device")


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" -> CUDA when available, else CPU; anything else is checked to exist."""
    if isinstance(name, torch.device):
        device = name
    elif name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' but got {name!r} ({exc})."
            ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} was asked for but CUDA is not available; use 'cpu' or 'auto'.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible."
            )
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA when supported, else fp16 (needs a GradScaler); None (fp32) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def default_num_workers(augment: str) -> int:
    """Loader worker processes: env override, else 0 without augmentation (a vectorised gather
    needs no workers), else min(4, cpus - 1)."""
    env = os.environ.get(NUM_WORKERS_ENV)
    if env is not None:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"{NUM_WORKERS_ENV} must be an integer >= 0 but got {env!r}.") from None
        if value < 0:
            raise ValueError(f"{NUM_WORKERS_ENV} must be an integer >= 0 but got {env!r}.")
        return value
    if augment == "none":
        return 0
    return max(0, min(4, len(os.sched_getaffinity(0)) - 1))


def requested_augment_on(value: str | None = None) -> str:
    """Where augmentation should run: ``value``, else env MASK_AUTOML_AUGMENT_ON, else "auto" (on the
    device when it is a GPU, in the loader's worker processes otherwise)."""
    source = "augment_on" if value is not None else AUGMENT_ON_ENV
    value = value if value is not None else os.environ.get(AUGMENT_ON_ENV, "auto")
    if value not in AUGMENT_PLACES:
        raise ValueError(f"{source} must be one of {', '.join(AUGMENT_PLACES)} but got {value!r}.")
    return value
