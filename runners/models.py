"""The trial's classifier: a timm backbone, the trial's head (runners/heads/: its logits to the 18
class scores), stages for unfrozen depth.

Stages come from timm's own metadata so any backbone works: ``group_matcher(coarse=True)``
(stem, one group per block stage, then the unmatched rest = head), or, for the few families
without it, ``feature_info`` (a stage ends at each feature output). The head group is timm's
trailing group: the classifier plus, for some families, a final norm (ConvNeXt's head.norm);
it always trains.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import timm
import torch
from timm.models import group_parameters
from torch import nn

from runners.config import TrialConfig
from runners.heads import HEADS, Head
from runners.weights import check_backbone_name, create_backbone

logger = logging.getLogger(__name__)


class ClassScores(nn.Module):
    """A head's step from the classifier's logits to the 18 class scores (``Head.class_scores``),
    holding the head's array constants as buffers, so that they follow the model to its device
    and the ONNX graph holds them; they are not persistent (no checkpoint carries them)."""

    def __init__(self, head: Head, age_cutoff: int) -> None:
        super().__init__()
        self.head = head
        for name, value in head.constants(age_cutoff).items():
            if isinstance(value, np.ndarray):
                self.register_buffer(name, torch.as_tensor(value), persistent=False)
            else:
                setattr(self, name, value)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.head.class_scores(logits, self)

    def age_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if self.head.age_logits is None:
            raise ValueError(f"head {self.head.name!r} learns no ages; use a head that does ({_age_heads()}).")
        return self.head.age_logits(logits, self)

    def age_loss(self, age_logits: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
        if self.head.age_loss is None:
            raise ValueError(f"head {self.head.name!r} learns no ages; use a head that does ({_age_heads()}).")
        return self.head.age_loss(age_logits, ages, self)


def _age_heads() -> str:
    return ", ".join(name for name, head in HEADS.items() if head.learns_age)


class MlpHead(nn.Sequential):
    """Linear -> BatchNorm1d -> ReLU -> Dropout -> Linear, in place of a backbone's linear classifier."""

    def __init__(self, in_features: int, hidden: int, out_features: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_features),
        )


def install_mlp_head(net: nn.Module, hidden: int, dropout: float) -> None:
    """Swap ``net``'s linear classifier for an ``MlpHead`` at the same place, so that timm's
    forward, ``get_classifier`` and parameter groups (the head group) all see the new head."""
    classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
    if not isinstance(classifier, nn.Linear):
        raise ValueError(
            f"head_type 'mlp' replaces a linear classifier, but {type(net).__name__}'s classifier is "
            f"{type(classifier).__name__}; use head_type = 'linear' with this backbone."
        )
    name = next(n for n, m in net.named_modules() if m is classifier)
    parent_name, _, attr = name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, attr, MlpHead(classifier.in_features, hidden, classifier.out_features, dropout))


class TrialModel(nn.Module):
    """Backbone + head giving NUM_CLASSES class logits for a normalised float NCHW input.

    Keeps frozen BatchNorm layers in eval mode across ``train()`` calls, so their running
    statistics stay the pretrained ones.
    """

    def __init__(self, net: nn.Module, backbone: str, head: str = "single", age_cutoff: int = 60) -> None:
        super().__init__()
        self.net = net
        self.backbone = backbone
        self.head = head
        self.combine = ClassScores(HEADS.get(head), age_cutoff)
        groups = stage_groups(net)
        self.n_stages = len(groups) - 1
        self.head_names: frozenset[str] = frozenset(groups[-1])
        self._groups = groups
        self._frozen_norms: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(self.net(x))

    def forward_with_age(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class scores and the head's age logits (what its age loss trains) for a head that learns
        the real ages; a method beside ``forward``, so that the graph an export traces never sees
        the choice."""
        if not HEADS.get(self.head).learns_age:
            raise ValueError(f"forward_with_age needs a head that learns ages ({_age_heads()}) "
                             f"but this model's head is {self.head!r}.")
        raw = self.net(x)
        return self.combine(raw), self.combine.age_logits(raw)

    def train(self, mode: bool = True) -> TrialModel:
        super().train(mode)
        if mode:
            for name in self._frozen_norms:
                self.net.get_submodule(name).eval()
        return self


class ClassifierWithPreprocess(nn.Module):
    """Normalises on the device: uint8 NHWC, or float NCHW in [0, 255], -> ``model``.

    The branch is on dtype only (fixed when traced), never on values, so it exports to ONNX.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t), persistent=False)
        self.register_buffer("shift", mean_t / std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self._normalised(x))

    def forward_with_age(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``TrialModel.forward_with_age`` of the normalised input (the training of a head that learns ages)."""
        return self.model.forward_with_age(self._normalised(x))

    def _normalised(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.permute(0, 3, 1, 2)  # NHWC -> NCHW view, channels_last in memory
        x = x.to(torch.float32, copy=True)  # always a new tensor: the in-place ops touch no caller's data
        return x.mul_(self.scale).sub_(self.shift)


def build_model(config: TrialConfig) -> TrialModel:
    """The full classifier of a trial, with its unfrozen depth applied."""
    kwargs: dict[str, Any] = {"drop_rate": config.drop_rate}
    if _fixed_input_size(config.backbone):
        kwargs["img_size"] = (config.height, config.width)
    net = create_backbone(
        config.backbone,
        num_classes=HEADS.get(config.head).outputs,
        pretrained=config.pretrained,
        weights_dir=config.weights_dir,
        **kwargs,
    )
    if config.head_type == "mlp":
        install_mlp_head(net, config.head_hidden, config.head_dropout)
    model = TrialModel(net, config.backbone, config.head, config.age_cutoff)
    apply_unfrozen_depth(model, config.unfrozen_depth)
    return model


def model_data_config(model_or_config: nn.Module | TrialConfig | str) -> dict[str, Any]:
    """timm's data config (mean, std, input_size, interpolation, ...) for a model or config."""
    if isinstance(model_or_config, ClassifierWithPreprocess):
        model_or_config = model_or_config.model
    if isinstance(model_or_config, TrialModel):
        return dict(timm.data.resolve_model_data_config(model_or_config.net))
    if isinstance(model_or_config, TrialConfig):
        model_or_config = model_or_config.backbone
    if isinstance(model_or_config, str):
        return dict(timm.data.resolve_model_data_config(_meta_model(model_or_config)))
    return dict(timm.data.resolve_model_data_config(model_or_config))


def stage_groups(net: nn.Module) -> list[list[str]]:
    """Parameter names per group: [stem, stage 1, ..., stage n-1, head], in forward order."""
    if hasattr(net, "group_matcher"):
        grouped = group_parameters(net, net.group_matcher(coarse=True))
        groups = [list(grouped[k]) for k in sorted(grouped)]
    elif getattr(net, "feature_info", None):
        groups = _groups_from_feature_info(net)
    else:
        raise ValueError(
            f"{type(net).__name__} has neither group_matcher nor feature_info; cannot find its stages."
        )
    groups = [g for g in groups if g]
    head = _classifier_param_names(net)
    if len(groups) < 2 or not head or not head <= set(groups[-1]):
        raise ValueError(
            f"cannot identify stem/stages/head of {type(net).__name__}: the classifier {sorted(head)[:4]} "
            "is not in timm's last parameter group."
        )
    return groups


@functools.cache
def count_stages(backbone: str) -> int:
    """Number of backbone stages (stem included) unfrozen_depth ranges over: 0..n, -1 = all."""
    check_backbone_name(backbone)
    return len(stage_groups(_meta_model(backbone))) - 1


def apply_unfrozen_depth(model: TrialModel, k: int) -> None:
    """Train the head and the last ``k`` backbone stages (k = -1 or n: all); freeze the rest."""
    if not isinstance(model, TrialModel):
        raise TypeError(f"apply_unfrozen_depth needs a TrialModel (from build_model) but got {type(model).__name__}.")
    n = model.n_stages
    if k == -1:
        k = n
    if not 0 <= k <= n:
        raise ValueError(
            f"unfrozen_depth {k} is out of range for backbone {model.backbone!r}, which has {n} stages "
            f"(stem included): use 0..{n}, or -1 for all."
        )
    trainable = set(model.head_names).union(*model._groups[n - k : n])
    for name, param in model.net.named_parameters():
        param.requires_grad_(name in trainable)
    params = dict(model.net.named_parameters())
    frozen_norms = []
    for name, module in model.net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not _trains(name, module, params):
            frozen_norms.append(name)
    model._frozen_norms = frozen_norms
    model.train(model.training)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return total, sum(p.numel() for p in model.parameters() if p.requires_grad)


def _trains(name: str, module: nn.Module, params: dict[str, nn.Parameter]) -> bool:
    own = list(module.parameters(recurse=False))
    if own:
        return any(p.requires_grad for p in own)
    # A BatchNorm without affine parameters follows the parameters of its enclosing block.
    parts = name.split(".")
    while parts:
        parts.pop()
        prefix = ".".join(parts) + "." if parts else ""
        around = [p for n, p in params.items() if n.startswith(prefix)]
        if around:
            return any(p.requires_grad for p in around)
    return False


def _classifier_param_names(net: nn.Module) -> set[str]:
    heads = net.get_classifier() if hasattr(net, "get_classifier") else None
    modules = heads if isinstance(heads, (tuple, list)) else (heads,)
    ids = {id(p) for m in modules if isinstance(m, nn.Module) for p in m.parameters()}
    return {n for n, p in net.named_parameters() if id(p) in ids}


def _groups_from_feature_info(net: nn.Module) -> list[list[str]]:
    """Stem = parameters before the first feature module; a stage ends at each feature module
    (parameters between two feature modules belong to the later); the rest is the head."""
    feature_modules = [f["module"] for f in net.feature_info]
    groups: list[list[str]] = [[] for _ in range(len(feature_modules) + 2)]
    last_stage = 0
    for name, _ in net.named_parameters():
        stage = next((i + 1 for i, m in enumerate(feature_modules) if name.startswith(m + ".")), None)
        if stage is not None:
            last_stage = stage
            groups[stage].append(name)
        elif last_stage == 0:
            groups[0].append(name)
        else:
            groups[-1].append(name)  # after the last feature module seen so far: provisional head
    # Parameters between feature modules were appended to the head; move each to the next stage.
    head: list[str] = []
    order = [n for n, _ in net.named_parameters()]
    position = {n: i for i, n in enumerate(order)}
    starts = [min((position[n] for n in g), default=None) for g in groups[1:-1]]
    for name in groups[-1]:
        later = [i for i, s in enumerate(starts) if s is not None and s > position[name]]
        if later:
            groups[later[0] + 1].append(name)
        else:
            head.append(name)
    groups[-1] = head
    return groups


@functools.lru_cache(maxsize=64)
def _meta_model(backbone: str) -> nn.Module:
    """Shapes and metadata without memory or downloads; CPU build if a family needs real tensors."""
    check_backbone_name(backbone)
    try:
        with torch.device("meta"):
            return timm.create_model(backbone, pretrained=False)
    except Exception:
        logger.debug("meta build of %s failed; building on CPU", backbone, exc_info=True)
        return timm.create_model(backbone, pretrained=False)


def _fixed_input_size(backbone: str) -> bool:
    return bool(_meta_model(backbone).pretrained_cfg.get("fixed_input_size", False))
