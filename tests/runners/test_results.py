"""runners/results.py: the one trial summary, stored as a trial's user attributes and result.json."""

from __future__ import annotations

import json

import numpy as np

from runners.classes import NUM_CLASSES
from runners.results import EpochRecord, TrialResult

# The keys that stored studies hold and that the report, the dashboard note, the progress log and
# the ensemble read; renaming one would orphan every study made before.
STORED_KEYS = {"status", "failure_reason", "best_epoch", "epochs_run", "per_class_f1", "confusion", "val_accuracy",
               "seconds_per_epoch", "train_images_per_s", "device", "augment_on", "n_params", "n_trainable",
               "history"}


def _record(
    epoch: int, f1: float, accuracy: float, seconds: float, speed: float, val_loss: float = 1.0
) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=1.0, val_loss=val_loss, val_macro_f1=f1, val_accuracy=accuracy,
                       seconds=seconds, train_images_per_s=speed)


def test_summary_holds_the_stored_keys_with_means_of_the_epochs_and_the_best_epochs_accuracy() -> None:
    confusion = np.eye(NUM_CLASSES, dtype=np.int64)
    result = TrialResult(
        status="complete", reason="early_stopping at epoch 2", best_epoch=1, best_macro_f1=0.5,
        history=[_record(1, 0.5, 0.61234, 10.0, 100.0), _record(2, 0.4, 0.7, 20.0, 50.0)],
        per_class_f1=[1 / 3] * NUM_CLASSES, confusion=confusion, n_params=10, n_trainable=4, augment_on="loader",
    )
    summary = json.loads(json.dumps(result.to_summary(), allow_nan=False))
    assert STORED_KEYS <= set(summary)
    assert summary["failure_reason"] == "early_stopping at epoch 2" and summary["best_epoch"] == 1
    assert summary["seconds_per_epoch"] == 15.0 and summary["train_images_per_s"] == 75.0
    assert summary["val_accuracy"] == 0.6123, "the best epoch's accuracy, not the last one's"
    assert summary["per_class_f1"] == [0.3333] * NUM_CLASSES and summary["confusion"] == confusion.tolist()
    assert summary["epochs_run"] == 2 and [h["epoch"] for h in summary["history"]] == [1, 2]
    assert (summary["n_params"], summary["n_trainable"], summary["augment_on"]) == (10, 4, "loader")


def test_summary_of_a_diverged_trial_is_strict_json() -> None:
    result = TrialResult(status="failed", reason="nan_val_loss at epoch 1",
                         history=[_record(1, 0.0, 0.0, 1.0, 10.0, val_loss=float("nan"))])
    summary = json.loads(json.dumps(result.to_summary(), allow_nan=False))
    assert summary["history"][0]["val_loss"] is None and summary["val_accuracy"] is None
    assert summary["best_epoch"] is None and summary["status"] == "failed"


def test_summary_of_a_trial_without_epochs_has_no_means() -> None:
    summary = TrialResult(status="failed", reason="cuda_oom").to_summary()
    assert summary["seconds_per_epoch"] is None and summary["train_images_per_s"] is None
    assert summary["history"] == [] and summary["per_class_f1"] == []
