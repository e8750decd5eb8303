"""search/engine/objective.py: how a trial's outcome becomes a value, a pruning, or a failure with its reason."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

import search.engine.objective as objective_module
from runners import EpochRecord, TrialResult
from runners.classes import NUM_CLASSES
from runners.config import TrialConfig
from search.engine.objective import Objective, TrialFailed, retain_top
from search.engine.prepare import StudyData, open_study
from search.studyfile.parse import StudySpec, load_study_spec
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore

PARAMS = {"backbone": "test_resnet", "age_cutoff": 59, "focal_gamma": 1.0, "unfrozen_depth": 1, "lr": 0.01,
          "augment": "none"}


@dataclasses.dataclass
class Opened:
    spec: StudySpec
    study: optuna.Study
    data: StudyData
    workdir: Path


@pytest.fixture(scope="module")
def spec_and_data(tiny_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[StudySpec, StudyData]:
    smoke = load_study_spec("smoke")
    spec = dataclasses.replace(smoke, fixed={**smoke.fixed, "epochs": 2})
    workdir = tmp_path_factory.mktemp("objective")
    _, data = open_study(spec, f"sqlite:///{workdir / 'studies.db'}", workdir, data_root=tiny_bench)
    return spec, data


@pytest.fixture
def opened(spec_and_data: tuple[StudySpec, StudyData], tmp_path: Path) -> Opened:
    """A fresh study (its own storage and work folder) on the shared data and split."""
    spec, data = spec_and_data
    study = optuna.create_study(study_name="smoke", storage=f"sqlite:///{tmp_path / 'studies.db'}",
                                direction="maximize")
    return Opened(spec, study, data, tmp_path)


def _record(epoch: int, f1: float, loss: float = 1.0) -> EpochRecord:
    return EpochRecord(epoch=epoch, train_loss=loss, val_loss=loss, val_macro_f1=f1, val_accuracy=f1, seconds=1.0,
                       train_images_per_s=1.0)


def _ask(study: optuna.Study) -> optuna.Trial:
    """A new trial with PARAMS as the space's answers."""
    study.enqueue_trial(PARAMS)
    return study.ask()


def _fake_fit(monkeypatch: pytest.MonkeyPatch, status: str, records: list[EpochRecord], **result: Any) -> None:
    """runners.fit that shows its reporter ``records`` and returns ``status`` without training."""

    def fit(config: TrialConfig, train: object, val: object, reporter: Any, **_: object) -> TrialResult:
        for record in records:
            reporter(record)
        return TrialResult(status=status, history=list(records), **result)  # type: ignore[arg-type]

    monkeypatch.setattr(objective_module, "fit", fit)


def test_a_complete_trial_records_its_summary_artifacts_and_checkpoint(opened: Opened) -> None:
    opened.study.enqueue_trial(PARAMS)
    opened.study.optimize(Objective(opened.spec, opened.data, opened.workdir, device="cpu"), n_trials=1)
    (trial,) = opened.study.trials
    assert trial.state == TrialState.COMPLETE
    attrs = trial.user_attrs
    assert attrs["config"]["backbone"] == "test_resnet" and attrs["config"]["epochs"] == 2
    assert attrs["status"] == "complete" and attrs["epochs_run"] == 2 == len(attrs["history"])
    assert attrs["pruning_signal"] == "macro_f1"
    assert TrialAttrs.read(trial).pruning_curve == [h["val_macro_f1"] for h in attrs["history"]]
    assert trial.intermediate_values == {h["epoch"]: h["val_macro_f1"] for h in attrs["history"]}
    assert trial.value == max(h["val_macro_f1"] for h in attrs["history"])
    store = TrialStore(opened.workdir, "smoke")
    assert store.trial_numbers() == [0] and store.load_config(0) == attrs["config"]
    assert store.load_probs(0).shape == (len(opened.data.val_rows), NUM_CLASSES)
    names = {m.filename for m in get_all_artifact_meta(trial, storage=opened.study._storage)}
    assert names == {"val_probs.npy", "confusion_matrix.png"}


def test_a_failed_run_is_a_failed_trial_with_the_runners_reason(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_fit(monkeypatch, "failed", [], reason="nan_loss at epoch 1 step 3")
    trial = _ask(opened.study)
    with pytest.raises(TrialFailed, match="nan_loss at epoch 1 step 3"):
        Objective(opened.spec, opened.data, opened.workdir)(trial)
    assert opened.study.trials[0].user_attrs["failure_reason"] == "nan_loss at epoch 1 step 3"


def test_a_pruned_run_raises_trial_pruned(opened: Opened, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_fit(monkeypatch, "pruned", [_record(1, 0.2)], reason="stopped_by_reporter")
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        Objective(opened.spec, opened.data, opened.workdir)(_ask(opened.study))
    assert TrialAttrs.read(opened.study.trials[0]).pruning_curve == [0.2]


def test_a_sampled_near_copy_of_a_complete_trial_ends_before_it_trains(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_fit(monkeypatch, "complete", [_record(1, 0.3)], best_macro_f1=0.3, state_dict={}, val_probs=None)
    objective = Objective(opened.spec, opened.data, opened.workdir)
    monkeypatch.setattr(objective, "_keep", lambda *_: None)
    assert objective(_ask(opened.study)) == 0.3
    monkeypatch.setattr(objective_module, "fit", lambda *_, **__: pytest.fail("a near copy must not train"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        opened.study.sampler = optuna.samplers.PartialFixedSampler(
            {**opened.study.trials[0].params, "lr": 0.0101}, opened.study.sampler
        )
    with pytest.raises(TrialFailed, match=r"not run: a near copy of trial 0 \(lr 0.0101 / 0.01\)"):
        objective(opened.study.ask())
    (_, copy) = opened.study.trials
    assert TrialAttrs.read(copy).failure_reason.startswith("not run: a near copy of trial 0")


class _Budget:
    """A watch whose time budget ran out after the first epoch."""

    def trial_started(self, number: int, epochs: int) -> None:
        self.started = (number, epochs)

    def epoch_done(self, number: int, record: EpochRecord, epochs: int, pruned: bool) -> bool:
        return True

    def cut_reason(self, number: int) -> str | None:
        return "stopped at the time budget after epoch 1 of 2"


def test_a_trial_stopped_by_the_time_budget_fails_with_that_reason_to_be_retried(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_fit(monkeypatch, "pruned", [_record(1, 0.2)], reason="stopped_by_reporter", best_epoch=1)
    watch = _Budget()
    with pytest.raises(TrialFailed, match="stopped at the time budget"):
        Objective(opened.spec, opened.data, opened.workdir, watch=watch)(_ask(opened.study))
    assert watch.started == (0, 2)
    assert opened.study.trials[0].user_attrs["failure_reason"] == "stopped at the time budget after epoch 1 of 2"


def test_an_error_fails_the_trial_but_the_same_error_again_and_again_stops_the_study(
    opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fit(*args: object, **kwargs: object) -> TrialResult:
        raise RuntimeError("the data is broken")

    monkeypatch.setattr(objective_module, "fit", fit)
    objective = Objective(opened.spec, opened.data, opened.workdir, max_repeated_errors=2)
    with pytest.raises(TrialFailed, match="RuntimeError: the data is broken"):
        objective(_ask(opened.study))
    attrs = opened.study.trials[0].user_attrs
    assert attrs["failure_reason"] == "RuntimeError: the data is broken" and "Traceback" in attrs["traceback"]
    with pytest.raises(RuntimeError, match="the data is broken"):  # the second in a row is not a bad config
        objective(_ask(opened.study))


def test_retain_top_keeps_the_best_finished_and_every_unfinished_trial(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    for value in (0.5, 0.9, 0.7, 0.6):
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=value))
    running = study.ask()
    store = TrialStore(tmp_path, "s")
    for number in range(running.number + 2):  # the running trial's folder, and the current trial's
        (store.trial_dir(number)).mkdir(parents=True)
    current = running.number + 1
    deleted = retain_top(study, store, keep_top=2, current=(current, 0.8))
    assert sorted(deleted) == [0, 2, 3] and store.trial_numbers() == [1, running.number, current]
