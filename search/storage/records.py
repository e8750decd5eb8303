"""What a trial leaves for people to read: its artifacts, and the study note that
optuna-dashboard shows. The trial's user attributes are its summary, ``TrialResult.to_summary``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import optuna
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState
from PIL import Image, ImageDraw

from runners.classes import CLASS_NAMES
from search.common.optuna_compat import ArtifactStore
from search.storage.study_attrs import StudyAttrs
from search.storage.trial_attrs import TrialAttrs


def upload_trial_artifacts(
    store: ArtifactStore, trial: optuna.Trial, val_probs: np.ndarray, confusion: np.ndarray
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        probs_path = Path(tmp) / "val_probs.npy"
        np.save(probs_path, val_probs.astype(np.float32))
        upload_artifact(artifact_store=store, file_path=str(probs_path), study_or_trial=trial)
        png_path = Path(tmp) / "confusion_matrix.png"
        confusion_png(confusion, png_path, title=f"trial {trial.number}: validation confusion (rows = truth)")
        upload_artifact(artifact_store=store, file_path=str(png_path), study_or_trial=trial, mimetype="image/png")


def confusion_png(confusion: np.ndarray, path: Path, title: str = "", cell: int = 30) -> None:
    """A classes x classes heat map, row-normalised, with counts in the cells."""
    n = confusion.shape[0]
    left, top = 40, 40
    img = Image.new("RGB", (left + n * cell + 10, top + n * cell + 10), "white")
    draw = ImageDraw.Draw(img)
    draw.text((4, 4), title, fill="black")
    rows = confusion.sum(axis=1, keepdims=True).clip(min=1)
    share = confusion / rows
    for i in range(n):
        draw.text((8, top + i * cell + cell // 3), str(i), fill="black")
        draw.text((left + i * cell + cell // 3, top - 14), str(i), fill="black")
        for j in range(n):
            shade = int(255 * (1 - share[i, j]))
            color = (shade, shade, 255) if i == j else (255, shade, shade)
            x, y = left + j * cell, top + i * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=color, outline=(220, 220, 220))
            if confusion[i, j]:
                draw.text((x + 3, y + cell // 3), str(int(confusion[i, j])), fill="black")
    img.save(path)


def study_note(study: optuna.Study, top: int = 5) -> str:
    """Markdown summary of the best trials, for the dashboard's study note."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    done.sort(key=lambda t: t.value, reverse=True)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    attrs = StudyAttrs.find(study)
    lines = [
        f"# {study.study_name}",
        "",
        attrs.description if attrs else "",
        "",
        "Trials: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v),
        f"Data: `{attrs.data_root if attrs else None}`; validation people: "
        f"{len(attrs.split.val_people) if attrs else 0}",
        "",
        "| trial | macro-F1 | backbone | age cutoff | gamma | depth | augment | best epoch | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in done[:top]:
        attrs = TrialAttrs.read(t)
        c = attrs.config or {}
        lines.append(
            f"| {t.number} | {t.value:.4f} | {c.get('backbone')} | {c.get('age_cutoff')} | "
            f"{c.get('focal_gamma', 0):.2f} | {c.get('unfrozen_depth')} | {c.get('augment')} | "
            f"{attrs.best_epoch} | {attrs.seconds_per_epoch} |"
        )
    if done:
        best = done[0]
        per_class = TrialAttrs.read(best).per_class_f1
        weakest = sorted(range(len(per_class)), key=lambda i: per_class[i])[:3]
        lines += ["", "Weakest classes of the best trial: "
                  + ", ".join(f"{i} {CLASS_NAMES[i]} (F1 {per_class[i]:.2f})" for i in weakest)]
    return "\n".join(lines) + "\n"


def save_study_note(study: optuna.Study) -> None:
    from optuna_dashboard import save_note

    save_note(study, study_note(study))
