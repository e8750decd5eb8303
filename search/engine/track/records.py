"""What a tracker logs, read from what the harness already records: a finished trial's user
attributes (``TrialResult.to_summary`` and its config) and an ensemble ``Outcome``.

Plain data, no tracker imported here: ``search/engine/track/mlflow_tracker.py`` and
``search/engine/track/wandb_tracker.py`` write it. The study's storage URL is never part of it, so a
storage password cannot reach a tracker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from runners.classes import CLASS_NAMES
from search.storage.trial_attrs import TrialAttrs

EPOCH_KEYS = ("val_macro_f1", "val_loss", "train_loss", "val_accuracy")  # per-epoch metrics, step = epoch


def mlflow_uri(workdir: Path, target: str | None = None) -> str:
    """The MLflow tracking URI of a run: ``target``, else a SQLite store in the work folder (MLflow 3
    refuses its plain file store unless MLFLOW_ALLOW_FILE_STORE is set)."""
    return target or f"sqlite:///{(Path(workdir) / 'mlflow.db').resolve()}"


def metric_name(text: str) -> str:
    """``text`` as a metric key both trackers take (MLflow allows letters, digits, _ - . / and space)."""
    return re.sub(r"[^A-Za-z0-9_./-]+", "_", text).strip("_")


def class_key(index: int) -> str:
    """``f1_class_07`` : a per-class F1 metric (the class names hold <, > and =, which MLflow refuses)."""
    return f"f1_class_{index:02d}"


@dataclass(frozen=True)
class TrialLog:
    study: str
    number: int
    state: str  # complete, pruned or fail
    value: float | None  # the trial's validation macro-F1 (best epoch), None unless complete
    params: dict[str, Any]  # the full TrialConfig of the trial: sampled and fixed values alike
    epochs: list[dict[str, float]]  # per epoch: "epoch" and the EPOCH_KEYS that are finite
    per_class_f1: list[float]  # best epoch, class index order (runners.classes)
    confusion: list[list[int]] | None  # rows = truth, columns = prediction
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def run_name(self) -> str:
        return f"trial {self.number}"

    def final_metrics(self) -> dict[str, float]:
        out = {class_key(i): float(v) for i, v in enumerate(self.per_class_f1)}
        if self.value is not None:
            out["macro_f1"] = float(self.value)
        return out

    def per_class_table(self) -> dict[str, float]:
        return {f"{i} {CLASS_NAMES[i]}": float(v) for i, v in enumerate(self.per_class_f1)}


def trial_log(study_name: str, trial: FrozenTrial) -> TrialLog:
    attrs = TrialAttrs.read(trial)
    epochs = []
    for h in attrs.history:
        row = {"epoch": int(h["epoch"])}
        row.update({k: float(h[k]) for k in EPOCH_KEYS if isinstance(h.get(k), (int, float))})
        epochs.append(row)
    tags = {"optuna.study": study_name, "optuna.trial": str(trial.number), "state": trial.state.name.lower()}
    for key in ("failure_reason", "best_epoch", "device", "pruning_signal", "worker"):
        if getattr(attrs, key) is not None:
            tags[key] = str(getattr(attrs, key))[:500]
    return TrialLog(
        study=study_name,
        number=trial.number,
        state=trial.state.name.lower(),
        # a pruned trial's value is its last intermediate value, not a score: only complete ones have one
        value=float(trial.value) if trial.state == TrialState.COMPLETE and trial.value is not None else None,
        params=dict(attrs.config or trial.params),
        epochs=epochs,
        per_class_f1=[float(v) for v in attrs.per_class_f1],
        confusion=attrs.confusion,
        tags=tags,
    )


@dataclass(frozen=True)
class EnsembleLog:
    study: str
    source: str  # the verb that chose it: search.ensemble or search.export
    metrics: dict[str, float]  # held-out, in-sample and (bench) eval scores of every method
    params: dict[str, Any]  # vote, honest-estimate mode, selection settings, members and weights
    summary: dict[str, Any]  # Outcome.to_dict(): the whole comparison, logged as a JSON file
    bundle: str | None = None  # the exported bundle folder

    @property
    def run_name(self) -> str:
        return f"ensemble ({self.source.removeprefix('search.')})"


def ensemble_log(outcome: Any, source: str, bundle: Path | None = None) -> EnsembleLog:
    """``outcome``: a search.ensembling.procedure.Outcome (a layer above the engine, so not imported)."""
    metrics: dict[str, float] = {}
    for s in outcome.honest.scores:
        metrics[metric_name(f"heldout_macro_f1/{s.method}")] = float(s.macro_f1)
        metrics[metric_name(f"heldout_accuracy/{s.method}")] = float(s.accuracy)
    for method, (f1, acc) in outcome.in_sample.items():
        metrics[metric_name(f"insample_macro_f1/{method}")] = float(f1)
        metrics[metric_name(f"insample_accuracy/{method}")] = float(acc)
    for method, (f1, acc) in (outcome.eval_scores or {}).items():
        metrics[metric_name(f"eval_macro_f1/{method}")] = float(f1)
        metrics[metric_name(f"eval_accuracy/{method}")] = float(acc)
    choice = outcome.choice()
    params: dict[str, Any] = {
        "vote": outcome.vote.vote,
        "weights_from": "learned" if outcome.vote.given is None else "given",
        "honest_mode": outcome.honest.mode,
        "candidates": len(outcome.candidates),
        "members": ", ".join(outcome.candidates[m].name for m in choice.members),
        "member_weights": ", ".join(f"{w:.3f}" for w in choice.weights),
        **{f"selection.{k}": v for k, v in outcome.honest.settings.items()},
    }
    return EnsembleLog(outcome.study, source, metrics, params, outcome.to_dict(),
                       None if bundle is None else str(bundle))
