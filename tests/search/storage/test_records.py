"""search/storage/records.py: the study note the dashboard shows, the confusion picture and the trial artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState
from PIL import Image

from runners.classes import CLASS_NAMES, NUM_CLASSES
from runners.results import EpochRecord, TrialResult
from search.data import PersonSplit
from search.storage.records import confusion_png, study_note, upload_trial_artifacts
from search.storage.backends import artifact_store
from search.storage.study_attrs import StudyAttrs


def _summary(per_class_f1: list[float]) -> dict[str, object]:
    record = EpochRecord(epoch=1, train_loss=1.0, val_loss=1.0, val_macro_f1=0.5, val_accuracy=0.5, seconds=4.0,
                         train_images_per_s=10.0)
    return TrialResult(status="complete", history=[record], best_epoch=1, per_class_f1=per_class_f1).to_summary()


def _study() -> optuna.Study:
    study = optuna.create_study(study_name="age_cutoff", direction="maximize")
    split = PersonSplit(("a", "b", "c"), ("d", "e"), seed=0, method="holdout:0.4")
    StudyAttrs(data_fingerprint="f", split=split, data_root="/data/x", description="Which cutoff?").write(study)
    weak = [0.9] * NUM_CLASSES
    weak[17], weak[6], weak[2] = 0.1, 0.2, 0.3
    for value, backbone in ((0.7, "test_resnet"), (0.8, "test_efficientnet")):
        config = {"backbone": backbone, "age_cutoff": 59, "focal_gamma": 1.5, "unfrozen_depth": 2, "augment": "flip"}
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.COMPLETE, value=value, user_attrs={"config": config, **_summary(weak)}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.1}))
    return study


def test_the_note_lists_the_best_trials_first_with_the_recorded_summary() -> None:
    note = study_note(_study())
    lines = note.splitlines()
    assert lines[0] == "# age_cutoff" and "Which cutoff?" in lines
    assert "Trials: 2 complete, 1 pruned" in note
    assert "Data: `/data/x`; validation people: 2" in note
    rows = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert rows == ["| 1 | 0.8000 | test_efficientnet | 59 | 1.50 | 2 | flip | 1 | 4.0 |",
                    "| 0 | 0.7000 | test_resnet | 59 | 1.50 | 2 | flip | 1 | 4.0 |"]
    assert study_note(_study(), top=1).count("| test_") == 1


def test_the_weakest_classes_are_named_with_the_one_class_scheme() -> None:
    (line,) = [line for line in study_note(_study()).splitlines() if line.startswith("Weakest")]
    assert line == ("Weakest classes of the best trial: 17 not_wear/female/>=60 (F1 0.10), "
                    "6 incorrect/male/<30 (F1 0.20), 2 wear/male/>=60 (F1 0.30)")
    assert CLASS_NAMES[17] == "not_wear/female/>=60"


def test_a_study_without_recorded_attributes_still_gets_a_note() -> None:
    study = optuna.create_study(study_name="bare")
    note = study_note(study)
    assert note.startswith("# bare\n") and "validation people: 0" in note and "Weakest" not in note


def test_the_confusion_picture_has_one_cell_per_class_pair(tmp_path: Path) -> None:
    confusion = np.diag(np.arange(1, NUM_CLASSES + 1))
    confusion[0, 1] = 5
    confusion_png(confusion, tmp_path / "c.png", title="t", cell=30)
    with Image.open(tmp_path / "c.png") as im:
        assert im.size == (40 + NUM_CLASSES * 30 + 10, 40 + NUM_CLASSES * 30 + 10)
        # a cell's top right corner, clear of the count written in it
        diagonal, off = im.getpixel((40 + 27, 40 + 2)), im.getpixel((40 + 30 + 27, 40 + 2))
    assert diagonal[2] == 255 and diagonal[0] < 255, "the diagonal is blue"
    assert off[0] == 255 and off[2] < 255, "a confusion is red"


def test_a_trial_uploads_its_probabilities_and_its_confusion_picture(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    probs = np.full((4, NUM_CLASSES), 1 / NUM_CLASSES)
    upload_trial_artifacts(artifact_store(tmp_path), trial, probs, np.eye(NUM_CLASSES, dtype=np.int64))
    metas = {m.filename: m for m in get_all_artifact_meta(trial, storage=study._storage)}
    assert set(metas) == {"val_probs.npy", "confusion_matrix.png"}
    assert metas["confusion_matrix.png"].mimetype == "image/png"
    with artifact_store(tmp_path).open_reader(metas["val_probs.npy"].artifact_id) as f:
        stored = np.load(f)
    assert stored.dtype == np.float32 and stored.shape == (4, NUM_CLASSES)
