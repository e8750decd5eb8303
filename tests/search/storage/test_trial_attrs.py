"""search/storage/trial_attrs.py: a trial's user attributes written and read through one dataclass,
on a real SQLite storage; old and edited studies read with defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import optuna
import pytest

from runners.classes import NUM_CLASSES
from runners.results import EpochRecord, TrialResult
from search.storage.trial_attrs import TrialAttrs


def _summary() -> dict:
    record = EpochRecord(epoch=1, train_loss=1.0, val_loss=float("nan"), val_macro_f1=0.5, val_accuracy=0.6,
                         seconds=2.0, train_images_per_s=40.0)
    return TrialResult(status="complete", best_epoch=1, best_macro_f1=0.5, history=[record],
                       per_class_f1=[0.5] * NUM_CLASSES, confusion=np.eye(NUM_CLASSES, dtype=np.int64)).to_summary()


def test_what_a_trial_writes_reads_back_typed_from_a_stored_study(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s", direction="maximize")
    trial = study.ask()
    summary = _summary()
    assert set(summary) <= {f.name for f in dataclasses.fields(TrialAttrs)}, "every summary key is a field"
    TrialAttrs.set(trial, config={"backbone": "test_resnet"}, pruning_signal="val_loss", worker="host:1",
                   pruning_curve=[-1.0, -0.9], cut_by_budget="stopped at the time budget after epoch 1 of 2")
    TrialAttrs.set(trial, **summary)
    study.tell(trial, 0.5)
    attrs = TrialAttrs.read(optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}").trials[0])
    assert attrs.config == {"backbone": "test_resnet"} and attrs.pruning_signal == "val_loss"
    assert attrs.worker == "host:1" and attrs.pruning_curve == [-1.0, -0.9]
    assert attrs.cut_by_budget.startswith("stopped at the time budget")
    assert (attrs.status, attrs.best_epoch, attrs.epochs_run, attrs.best_macro_f1) == ("complete", 1, 1, 0.5)
    assert attrs.confusion == np.eye(NUM_CLASSES, dtype=int).tolist() and len(attrs.per_class_f1) == NUM_CLASSES
    assert attrs.history[0]["val_loss"] is None, "a non-finite loss is stored as null"


def test_an_old_or_edited_study_reads_with_defaults() -> None:
    old = TrialAttrs.from_dict({"config": {"head": "single"}, "best_epoch": 2, "unknown_key": 1})
    assert old.config == {"head": "single"} and old.best_epoch == 2
    assert old.pruning_signal == "macro_f1", "trials from before the signal was recorded reported macro-F1"
    assert (old.history, old.per_class_f1, old.pruning_curve, old.failure_reason) == ([], [], None, None)
    edited = TrialAttrs.from_dict({"config": "a string", "best_epoch": True, "seconds_per_epoch": 3, "worker": 7})
    assert (edited.config, edited.best_epoch, edited.worker) == (None, None, None)
    assert edited.seconds_per_epoch == 3, "an integer is a number of seconds"


def test_a_write_names_a_field_and_gives_its_type() -> None:
    trial = optuna.create_study().ask()
    with pytest.raises(ValueError, match=r"\['cut_by_budgt'\] are no trial attributes"):
        TrialAttrs.set(trial, cut_by_budgt="typo")
    with pytest.raises(TypeError, match="trial attribute best_epoch must be int or null but got '3'"):
        TrialAttrs.set(trial, best_epoch="3")
    assert trial.user_attrs == {}, "nothing is half written"
    assert TrialAttrs.values(enqueued_from="studies/smoke.toml") == {"enqueued_from": "studies/smoke.toml"}


def test_without_drops_named_attributes_only() -> None:
    attrs = {"failure_reason": "worker died", "config": {"lr": 0.1}}
    assert TrialAttrs.without(attrs, "failure_reason") == {"config": {"lr": 0.1}}
    with pytest.raises(ValueError, match="no trial attributes"):
        TrialAttrs.without(attrs, "failure")
