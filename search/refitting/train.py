"""Refit chosen trials: the same TrialConfig retrained on K person folds, or on every person.

The number of epochs is every epoch the trial ran (``epochs="ran"``, the default): its whole
schedule, as the trials are scored and shipped at their last epoch. ``epochs="best"`` stops at the
epoch its validation macro-F1 chose instead (with the schedule run to the end over those epochs).
On real faces, the same trial's 3-fold group scored 0.515 eval macro-F1 at the 5 epochs it ran
against 0.488 at its best epoch's 3 (benchmarks/README.md, "Fold groups at every epoch the trial
ran, and which row ships"). A refit keeps its last epoch's weights: no held-out person chooses anything, so the
out-of-fold predictions are an honest score of the procedure over every person. So only that epoch
is validated (or the one the time budget stops it after): earlier passes over the held-out 1/K of
the people would score nothing that is used (a plateau schedule, which steers by them, still runs them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from runners import EpochRecord, ImageSet, fit
from runners.config import TrialConfig
from search.data import kfold_people, load_recorded_train
from search.engine.budget import EpochPace, RefitBudget
from search.storage.backends import resolve_storage
from search.storage.studies import open_stored_study
from runners.metrics import accuracy, macro_f1
from search.engine.prepare import StudyData
from search.refitting.progress import RefitProgress
from search.refitting.store import FoldPlan, RefitError, RefitStore
from search.storage.backends import DEFAULT_WORKDIR
from search.storage.study_attrs import StudyAttrs
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore

log = logging.getLogger(__name__)

EPOCH_RULES = ("ran", "best")
DEFAULT_EPOCHS = "ran"  # see the module docstring
MODES = ("folds", "all")


@dataclass
class RefitContext:
    """One stored study opened for refitting: its trials, its data and its store."""

    study: optuna.Study
    data: StudyData
    trials: TrialStore
    workdir: Path
    attrs: StudyAttrs


def open_refit(study_name: str, storage: str | None = None, workdir: Path | None = None) -> RefitContext:
    """The stored study ``study_name`` with the data it was run on (checked by fingerprint)."""
    url = resolve_storage(storage, workdir)
    study = open_stored_study(study_name, url)
    attrs = StudyAttrs.read(study)
    root = Path(workdir) if workdir is not None else Path(attrs.workdir or DEFAULT_WORKDIR)
    if attrs.data_root is None:
        raise RefitError(f"study {study_name!r} records no data folder; it was not made by python -m search.run.")
    relabel = Path(attrs.relabel) if attrs.relabel else None
    data = load_recorded_train(Path(attrs.data_root), relabel, attrs.data_fingerprint,
                               verified_dir=root / "cache")
    train_rows, val_rows = attrs.split.indices(data)
    return RefitContext(
        study,
        StudyData(data, attrs.split, train_rows, val_rows, root / "cache"),
        TrialStore(root, study_name),
        root,
        attrs,
    )


def choose_trials(
    study: optuna.Study, numbers: Sequence[int] = (), top: int | None = None
) -> list[FrozenTrial]:
    """The complete trials named by number, or the ``top`` best by value."""
    complete = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    if top is not None:
        if top < 1:
            raise RefitError(f"--top must be at least 1 but got {top}.")
        ranked = sorted(complete.values(), key=lambda t: (-(t.value or 0.0), t.number))
        return ranked[:top]
    missing = [n for n in numbers if n not in complete]
    if missing:
        raise RefitError(
            f"trial(s) {missing} of study {study.study_name!r} are not complete; complete trials are "
            f"{sorted(complete)}. Only a complete trial has the epochs and config to refit."
        )
    return [complete[n] for n in numbers]


def refit_config(trial: FrozenTrial, epochs: str = DEFAULT_EPOCHS) -> TrialConfig:
    """The trial's own TrialConfig with ``epochs`` set to its best epoch, or to the epochs it ran."""
    if epochs not in EPOCH_RULES:
        raise RefitError(f"epochs must be one of {list(EPOCH_RULES)} but got {epochs!r}.")
    attrs = TrialAttrs.read(trial)
    config = attrs.config
    chosen = attrs.best_epoch if epochs == "best" else attrs.epochs_run
    if config is None or chosen is None or chosen < 1:
        raise RefitError(
            f"trial {trial.number} records no config or no {'best_epoch' if epochs == 'best' else 'epochs_run'}; "
            "it was not run by this harness's objective, so it cannot be refitted."
        )
    return TrialConfig.from_dict(config).replace(epochs=chosen)


def fold_plan(ctx: RefitContext, k: int) -> FoldPlan:
    """K stratified person folds of every person of the study, seeded by the study's split seed."""
    splits = kfold_people(ctx.data.data, n_splits=k, seed=ctx.data.split.seed)
    return FoldPlan(k, ctx.data.split.seed, ctx.data.data.fingerprint, tuple(s.val_people for s in splits))


def model_seconds(ctx: RefitContext, trial: FrozenTrial, train_images: int, val_images: int, epochs: int) -> float:
    """Seconds a refit model of ``trial`` takes to train ``epochs`` on ``train_images`` and validate
    its last on ``val_images``, at the trial's own pace (search/engine/budget.py's ``EpochPace``: its
    training and validation parts scaled apart); 0.0 when the trial records no pace."""
    pace = EpochPace.of(TrialAttrs.read(trial))
    trial_train, trial_val = len(ctx.data.train_rows), len(ctx.data.val_rows)
    if pace is None or trial_train <= 0:
        return 0.0
    return pace.refit_model(epochs, train_images / trial_train, val_images / trial_val if trial_val else 0.0)


@dataclass
class ModelRun:
    """What became of one refit model this run: trained whole, cut short, or not started."""

    name: str
    seconds: float
    trained: bool  # False: not started or stopped at the time budget; a later run trains it (again)
    cut_at_epoch: int | None = None  # stopped at the time budget after this epoch, and kept (fold models)


def train_model(
    ctx: RefitContext,
    config: TrialConfig,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    budget: RefitBudget,
    device: str | None = None,
    augment_on: str | None = None,
    progress: RefitProgress | None = None,
    val_pass: float = 0.0,
) -> tuple[Any, float]:
    """Fit ``config`` on ``train_rows`` (its training labels), keeping the last epoch and validating
    only that one (``val_pass``: its expected seconds, which the budget must hold beside the epochs
    left); returns (TrialResult, seconds): its status "complete", or "pruned" when the budget stopped
    it after an epoch (``history`` says which; its weights and held-out probabilities are that epoch's)."""
    sd = ctx.data
    images = sd.images(config.height, config.width, config.crop)
    train = ImageSet(images, train_rows, sd.data.training_labels(config.age_cutoff)[train_rows],
                     sd.data.ages[train_rows])
    val = ImageSet(images, val_rows, sd.data.labels[val_rows])
    start = time.monotonic()
    epoch_seconds: list[float] = []

    def report(record: EpochRecord) -> bool:
        left_epochs = config.epochs - record.epoch
        epoch_seconds.append(record.seconds - record.val_seconds)
        # The epochs' own pace (training only: the last epoch's validation is ``val_pass``): the
        # model's set-up, counted once in the first epoch's share of the elapsed time, would make a
        # model cut after one epoch when the rest fits.
        per_epoch = sum(epoch_seconds) / len(epoch_seconds)
        if progress is not None:
            progress.epoch_done()
        log.debug(
            "epoch %d/%d: %.0f s, macro-F1 %.4f on %d images",
            record.epoch,
            config.epochs,
            record.seconds,
            record.val_macro_f1,
            len(val),
        )
        return left_epochs > 0 and not budget.fits(left_epochs * per_epoch + val_pass)

    result = fit(config, train, val, reporter=report, device=device, augment_on=augment_on, keep="last",
                 validate_every_epoch=False)
    seconds = time.monotonic() - start
    if result.status == "failed":
        raise RefitError(f"the refit of {config.backbone} failed: {result.reason}.")
    return result, seconds


@dataclass(frozen=True)
class Work:
    """What a refit of one trial still has to train: models, their epochs, and seconds at the trial's pace."""

    models: int
    epochs: int
    seconds: float


def fold_work(ctx: RefitContext, trial: FrozenTrial, k: int, epochs: str = DEFAULT_EPOCHS) -> Work:
    """The fold models of ``trial`` not trained yet (or cut short at a time budget), and their cost
    at the trial's own pace."""
    config = refit_config(trial, epochs)
    store = RefitStore(ctx.trials, trial.number)
    plan = fold_plan(ctx, k)
    person = ctx.data.data.images["person"].to_numpy().astype(str)
    missing = [np.isin(person, held) for i, held in enumerate(plan.folds)
               if not store.has_whole_model(store.fold_dir(k, i))]
    seconds = sum(model_seconds(ctx, trial, int(np.sum(~out)), int(np.sum(out)), config.epochs) for out in missing)
    return Work(len(missing), len(missing) * config.epochs, seconds)


def all_work(ctx: RefitContext, trial: FrozenTrial, epochs: str = DEFAULT_EPOCHS) -> Work:
    """The all-people model of ``trial``, when not trained yet, and its cost."""
    config = refit_config(trial, epochs)
    store = RefitStore(ctx.trials, trial.number)
    if store.has_model(store.all_dir()):
        return Work(0, 0, 0.0)
    return Work(1, config.epochs, model_seconds(ctx, trial, len(ctx.data.data.images), len(ctx.data.val_rows),
                                                config.epochs))


def refit_folds(
    ctx: RefitContext,
    trial: FrozenTrial,
    k: int,
    epochs: str = DEFAULT_EPOCHS,
    budget: RefitBudget | None = None,
    device: str | None = None,
    augment_on: str | None = None,
    progress: RefitProgress | None = None,
    folds: Collection[int] | None = None,
) -> dict[str, Any]:
    """Train the missing fold models of ``trial`` (of ``folds`` only, when given: another process
    trains the others); with all K done, its out-of-fold score.

    A model the budget stops after an epoch is kept with that epoch's weights and held-out
    predictions (``cut_at_epoch`` in its result.json): the time, not a held-out score, chose where it
    stopped, so the out-of-fold score stays honest, and the group ships rather than losing every
    model it trained. A later refit with the time trains it again (and keeps the one that ran more
    epochs, if that one is cut too)."""
    budget = budget or RefitBudget(None)
    config = refit_config(trial, epochs)
    store = RefitStore(ctx.trials, trial.number)
    plan = fold_plan(ctx, k)
    store.save_plan(plan)
    person = ctx.data.data.images["person"].to_numpy().astype(str)
    runs: list[ModelRun] = []
    for i, held in enumerate(plan.folds):
        folder = store.fold_dir(k, i)
        if store.has_whole_model(folder) or (folds is not None and i not in folds):
            continue
        stored_cut = store.cut_at(folder)
        out = np.isin(person, held)
        train_rows, val_rows = np.flatnonzero(~out), np.flatnonzero(out)
        need = model_seconds(ctx, trial, len(train_rows), len(val_rows), config.epochs)
        if not budget.fits(need):
            log.info(
                "trial %d fold %d/%d: needs about %.0f s, %.0f s left",
                trial.number,
                i,
                k,
                need,
                budget.left(),
            )
            runs.append(ModelRun(f"fold {i}", 0.0, False))
            if progress is not None:
                progress.skipped(config.epochs)
            continue
        log.debug(
            "trial %d: training fold %d/%d (%d images, %d held out)",
            trial.number,
            i,
            k,
            len(train_rows),
            len(val_rows),
        )
        name = f"trial {trial.number} fold {i + 1}/{k}"
        if progress is not None:
            progress.model_started(name)
        val_pass = model_seconds(ctx, trial, 0, len(val_rows), config.epochs)
        result, seconds = train_model(ctx, config, train_rows, val_rows, budget, device, augment_on, progress, val_pass)
        cut = None if result.status == "complete" else len(result.history)
        keep = cut is None or stored_cut is None or cut > stored_cut
        runs.append(ModelRun(f"fold {i}", seconds, cut is None, cut if keep else None))
        if progress is not None:
            progress.model_done(name, cut is None, cut, config.epochs)
        if not keep:
            continue
        summary = result.to_summary() | {"fold": i, "k": k, "epochs_rule": epochs, "trial": trial.number}
        if cut is not None:
            summary["cut_at_epoch"] = cut
        store.save_model(folder, result.state_dict, config.to_dict(), summary, (val_rows, result.val_probs))
    done = [i for i in range(k) if store.has_model(store.fold_dir(k, i))]
    report = {
        "trial": trial.number,
        "mode": "folds",
        "k": k,
        "epochs": config.epochs,
        "epochs_rule": epochs,
        "folds_done": len(done),
        "cut_folds": cut_folds(store, k),  # as out_of_fold's summary below records them
        "runs": [vars(r) for r in runs],
        "complete": len(done) == k,
    }
    if len(done) == k:
        report |= out_of_fold(ctx, store, plan, trial)
    return report


def cut_folds(store: RefitStore, k: int) -> dict[str, int]:
    """Fold index (a string, as JSON keeps it) -> the epoch after which the time budget stopped its
    stored model, for each cut one."""
    return {str(i): e for i in range(k) if (e := store.cut_at(store.fold_dir(k, i))) is not None}


def out_of_fold(ctx: RefitContext, store: RefitStore, plan: FoldPlan, trial: FrozenTrial) -> dict[str, Any]:
    """Put the K held-out predictions together: every image row exactly once, scored on canonical labels."""
    n = len(ctx.data.data.images)
    probs = np.zeros((n, 18), dtype=np.float32)
    fold = np.full(n, -1, dtype=np.int64)
    for i in range(plan.k):
        rows, p = store.load_held_out(store.fold_dir(plan.k, i))
        if np.any(fold[rows] >= 0):
            raise RefitError(
                f"{store.fold_dir(plan.k, i)} predicts rows another fold predicted; delete {store.folds_dir(plan.k)} and refit."
            )
        probs[rows], fold[rows] = p, i
    if np.any(fold < 0):
        raise RefitError(
            f"the folds of {store.folds_dir(plan.k)} leave {int(np.sum(fold < 0))} image rows unpredicted; "
            f"delete the folder and refit."
        )
    labels = ctx.data.data.labels
    val_rows = ctx.data.val_rows
    fold_f1 = [macro_f1(labels[fold == i], probs[fold == i]) for i in range(plan.k)]
    summary = {
        "trial": trial.number,
        "k": plan.k,
        "seed": plan.seed,
        "people": len(ctx.data.data.people),
        "images": n,
        "oof_macro_f1": macro_f1(labels, probs),
        "oof_accuracy": accuracy(labels, probs),
        "oof_macro_f1_validation_people": macro_f1(labels[val_rows], probs[val_rows]),
        "fold_macro_f1": fold_f1,
        "cut_folds": cut_folds(store, plan.k),
        "trial_validation_macro_f1": trial.value,
    }
    people = ctx.data.data.images["person"].to_numpy()
    store.save_oof(plan.k, np.arange(n, dtype=np.int64), probs, fold, summary, labels, people)
    ctx.study.set_user_attr(
        f"refit_{trial.number:05d}_folds{plan.k}",
        {k: summary[k] for k in ("oof_macro_f1", "oof_accuracy", "oof_macro_f1_validation_people")}
        | {"folder": str(store.folds_dir(plan.k))},
    )
    return summary


def refit_all(
    ctx: RefitContext,
    trial: FrozenTrial,
    epochs: str = DEFAULT_EPOCHS,
    budget: RefitBudget | None = None,
    device: str | None = None,
    augment_on: str | None = None,
    progress: RefitProgress | None = None,
) -> dict[str, Any]:
    """Train ``trial`` on every person. It has no held-out people: its validation figures are
    in-sample, and the trial's own validation score stands for it."""
    budget = budget or RefitBudget(None)
    config = refit_config(trial, epochs)
    store = RefitStore(ctx.trials, trial.number)
    folder = store.all_dir()
    report: dict[str, Any] = {
        "trial": trial.number,
        "mode": "all",
        "epochs": config.epochs,
        "epochs_rule": epochs,
        "trial_validation_macro_f1": trial.value,  # stands for the refit, which has no held-out people
    }
    if store.has_model(folder):
        return report | {"complete": True, "runs": []}
    rows = np.arange(len(ctx.data.data.images), dtype=np.int64)
    need = model_seconds(ctx, trial, len(rows), len(ctx.data.val_rows), config.epochs)
    if not budget.fits(need):
        if progress is not None:
            progress.skipped(config.epochs)
        return report | {"complete": False, "runs": [vars(ModelRun("all", 0.0, False))]}
    log.debug("trial %d: training on all %d images", trial.number, len(rows))
    name = f"trial {trial.number} all people"
    if progress is not None:
        progress.model_started(name)
    val_pass = model_seconds(ctx, trial, 0, len(ctx.data.val_rows), config.epochs)
    result, seconds = train_model(ctx, config, rows, ctx.data.val_rows, budget, device, augment_on, progress, val_pass)
    if progress is not None:
        progress.model_done(name, result.status == "complete")
    if result.status != "complete":  # not kept: the trial's validation score stands for the whole model only
        return report | {"complete": False, "runs": [vars(ModelRun("all", seconds, False))]}
    summary = result.to_summary() | {
        "trained_on": "all people",
        "epochs_rule": epochs,
        "trial": trial.number,
        "validation": "in-sample: the study's validation people were trained on",
    }
    store.save_model(folder, result.state_dict, config.to_dict(), summary)
    return report | {"complete": True, "runs": [vars(ModelRun("all", seconds, True))]}


def refit_table(reports: Sequence[dict[str, Any]]) -> str:
    """The refit reports as a markdown table: one row per trial and kind of refit."""
    lines = [
        "| trial | refit | epochs | models trained now | out-of-fold macro-F1, all people | on validation people "
        "| trial's validation macro-F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        trained = sum(1 for run in r["runs"] if run["trained"])
        if r["mode"] == "folds":
            cut = r.get("cut_folds") or {}
            short = "".join(f", fold {int(i) + 1} cut after epoch {e}" for i, e in sorted(cut.items(), key=lambda ie: int(ie[0])))
            what = f"{r['k']} folds ({r['folds_done']}/{r['k']} done{short})"
            oof = f"{r['oof_macro_f1']:.4f}" if r["complete"] else "-"
            val = f"{r['oof_macro_f1_validation_people']:.4f}" if r["complete"] else "-"
        else:
            what = "all people" + ("" if r["complete"] else " (not done)")
            oof, val = "none: no held-out people", "-"
        own = r.get("trial_validation_macro_f1")
        lines.append(
            f"| {r['trial']} | {what} | {r['epochs']} ({r['epochs_rule']}) | {trained} | {oof} | {val} "
            f"| {'-' if own is None else f'{own:.4f}'} |"
        )
    return "\n".join(lines)
