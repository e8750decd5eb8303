"""What one trial returns: per-epoch records and the outcome, best epoch's weights included."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from runners.classes import NUM_CLASSES

Status = Literal["complete", "pruned", "failed"]


@dataclass
class EpochRecord:
    epoch: int  # from 1
    train_loss: float  # mean training criterion over the epoch's images
    val_loss: float  # plain cross-entropy on canonical validation labels (comparable across trials)
    val_macro_f1: float
    val_accuracy: float
    seconds: float  # wall time of the epoch, training and validation
    train_images_per_s: float  # training images over training wall time
    # wall time of the epoch's validation pass, inside ``seconds``: a fold model validates on 1/K of the
    # people where its trial validated on val_fraction, so a refit's cost scales the two parts apart
    val_seconds: float = 0.0  # 0.0 in records from before it was measured

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrialResult:
    status: Status
    reason: str | None = None  # "nan_loss at epoch 1 step 3", "cuda_oom", "stopped_by_reporter", ...
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    best_macro_f1: float = 0.0
    per_class_f1: list[float] = field(default_factory=list)  # NUM_CLASSES values, best epoch
    # rows = truth, columns = prediction
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64))
    val_probs: np.ndarray | None = None  # (N_val, classes) float32 softmax of the best epoch, aligned with val.rows
    state_dict: dict[str, torch.Tensor] | None = None  # best epoch, CPU tensors (TrialModel keys)
    # The last epoch's, kept (by keep="best") only when it is not the best epoch: validation people chose
    # nothing about it, so the ensemble scores a trial on these (search.ensembling.candidates).
    last_val_probs: np.ndarray | None = None
    last_state_dict: dict[str, torch.Tensor] | None = None
    device: str = "cpu"
    augment_on: str = "none"  # where the augmentation set ran: "none" (no set), "loader" or "device"
    n_params: int = 0
    n_trainable: int = 0

    def to_summary(self) -> dict[str, Any]:
        """The trial's one JSON-able summary (no predictions, no weights): a study's trial user
        attributes (read by the report, the dashboard note, the progress log and the ensemble)
        and its ``result.json`` on disk. Non-finite losses become None, which JSON can hold."""
        seconds = [r.seconds for r in self.history]
        speeds = [r.train_images_per_s for r in self.history]
        best = next((r for r in self.history if r.epoch == self.best_epoch), None)
        return {
            "status": self.status,
            "failure_reason": self.reason,
            "best_epoch": self.best_epoch,
            "best_macro_f1": float(self.best_macro_f1),
            "epochs_run": len(self.history),
            "per_class_f1": [round(float(v), 4) for v in self.per_class_f1],
            "confusion": self.confusion.astype(int).tolist() if self.confusion is not None else None,
            "val_accuracy": round(float(best.val_accuracy), 4) if best is not None else None,
            "seconds_per_epoch": round(float(np.mean(seconds)), 3) if seconds else None,
            "train_images_per_s": round(float(np.mean(speeds)), 1) if speeds else None,
            "device": self.device,
            "augment_on": self.augment_on,
            "n_params": int(self.n_params),
            "n_trainable": int(self.n_trainable),
            "history": [_finite_or_none(r.to_dict()) for r in self.history],
        }


def _finite_or_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
