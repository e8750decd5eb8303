"""The plain description of one trial, shared by ``spaces`` (which builds it) and ``runners``
(which trains it). No torch, no optuna: it must stay importable anywhere.

A ``TrialConfig`` round-trips through a JSON-able dict; that dict is what a study records in
its trial user attributes and what an exported bundle carries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from runners.heads import HEADS

HEAD_TYPES = ("linear", "mlp")  # timm's classifier, or Linear-BatchNorm1d-ReLU-Dropout-Linear
OPTIMIZERS = ("adamw", "adam", "sgd")  # sgd: momentum 0.9, nesterov
# cosine: warm-up then cosine to 0; cosine_restarts: cycles of restart_epochs; step: x lr_decay every
# step_epochs; plateau: x lr_decay after plateau_patience epochs without a lower validation loss.
SCHEDULES = ("cosine", "cosine_restarts", "step", "plateau", "constant")
AUGMENT_SCOPES = ("all", "oversampled")  # oversampled: only the extra copies of oversampled rows
CLASS_WEIGHTINGS = ("none", "inverse", "sqrt_inverse")
OVERSAMPLING = ("none", "rare", "old")  # rare: classes below median size; old: age band 2
MAX_HEAD_HIDDEN = 1 << 16  # an mlp head wider than this is a typo (its weights alone would take gigabytes)


@dataclass(frozen=True)
class TrialConfig:
    # model
    backbone: str = "test_resnet"  # any timm model name
    pretrained: bool = False  # timm hub weights, or weights_dir when given
    weights_dir: str | None = None  # local folder of weight files for offline boxes
    unfrozen_depth: int = -1  # trailing backbone stages that train; 0 = head only, -1 = all
    head: str = "single"  # a name of runners/heads/ (HEADS)
    head_type: str = "linear"
    head_hidden: int = 512  # mlp head: width of its hidden layer
    head_dropout: float = 0.0  # mlp head: dropout after its hidden layer
    drop_rate: float = 0.0  # timm's dropout before the classifier
    # labels and loss
    age_cutoff: int = 60  # training labels only (ordinal head: its old line); validation always uses >= 60
    age_loss_weight: float = 1.0  # a head that learns ages (ordinal): weight of its age loss beside the class loss
    focal_gamma: float = 0.0  # 0 = cross-entropy
    label_smoothing: float = 0.0
    class_weighting: str = "none"
    oversample: str = "none"
    # data
    augment: str = "none"  # name of an augmentation set in runners.augment
    augment_scope: str = "all"  # oversampled: originals stay plain, each epoch adds augmented copies
    height: int = 64  # input size fed to the model (the image cache is built at this size)
    width: int = 48
    crop: str = "full"  # named crop of the source photo, see search.data (applied by the cache)
    # optimisation
    optimizer: str = "adamw"
    batch_size: int = 32
    lr: float = 1e-3  # peak learning rate of the head; the backbone gets lr * backbone_lr_scale
    backbone_lr_scale: float = 1.0
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_epochs: float = 0.5
    restart_epochs: int = 2  # cosine_restarts: epochs per cycle
    step_epochs: int = 3  # step: epochs between decays
    lr_decay: float = 0.1  # step and plateau: factor applied to the lr at each decay
    plateau_patience: int = 1  # plateau: epochs without a lower validation loss before a decay
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights; 0 = off
    epochs: int = 3
    patience: int = 2  # epochs without a better validation macro-F1 before stopping
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form, recorded but unused

    def __post_init__(self) -> None:
        _check_choice("head", self.head, tuple(HEADS.names()))
        _check_choice("head_type", self.head_type, HEAD_TYPES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("augment_scope", self.augment_scope, AUGMENT_SCOPES)
        _check_choice("class_weighting", self.class_weighting, CLASS_WEIGHTINGS)
        _check_choice("oversample", self.oversample, OVERSAMPLING)
        if self.unfrozen_depth < -1:
            raise ValueError(f"unfrozen_depth must be -1 (all) or >= 0 but got {self.unfrozen_depth}.")
        for name in ("height", "width", "batch_size", "epochs", "head_hidden", "restart_epochs", "step_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 but got {getattr(self, name)}.")
        if self.head_hidden > MAX_HEAD_HIDDEN:
            raise ValueError(f"head_hidden must be at most {MAX_HEAD_HIDDEN} but got {self.head_hidden}.")
        if self.patience < 0:
            raise ValueError(f"patience must be >= 0 but got {self.patience}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1) but got {self.label_smoothing}.")
        if self.age_loss_weight < 0:
            raise ValueError(f"age_loss_weight must be >= 0 but got {self.age_loss_weight}.")
        if self.focal_gamma < 0:
            raise ValueError(f"focal_gamma must be >= 0 but got {self.focal_gamma}.")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) (0 = off) but got {self.ema_decay}.")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0 but got {self.lr}.")
        for name in ("drop_rate", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1) but got {getattr(self, name)}.")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"lr_decay must be in (0, 1] but got {self.lr_decay}.")
        if self.plateau_patience < 0:
            raise ValueError(f"plateau_patience must be >= 0 but got {self.plateau_patience}.")
        if self.augment_scope == "oversampled" and self.oversample == "none":
            raise ValueError(
                "augment_scope 'oversampled' augments only the oversampled copies, but oversample is 'none': "
                "set oversample to 'old' or 'rare', or augment_scope to 'all'."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown TrialConfig keys {unknown}; valid keys are {sorted(known)}.")
        return cls(**data)

    def replace(self, **changes: Any) -> TrialConfig:
        return dataclasses.replace(self, **changes)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)} but got {value!r}.")
