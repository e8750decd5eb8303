"""The Optuna objective: space -> TrialConfig -> runners.fit -> records.

This is the only place where a trial's outcome is classified:
complete -> value; stopped by the time budget after an epoch -> complete with its best epoch's
value, its ``cut_by_budget`` attribute saying where (a candidate like any other); pruned ->
optuna.TrialPruned; NaN loss / out of memory -> TrialFailed (the
study goes on); a sampled near copy of a complete or running trial -> TrialFailed before it trains
(search/engine/nearcopy.py); any other error -> TrialFailed too, unless the same error ends several
trials in a row, which is a bug or broken data rather than a bad configuration.
"""

from __future__ import annotations

import gc
import logging
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import optuna
from optuna.trial import TrialState

from runners import EpochRecord, ImageSet, TrialResult, count_stages, fit
from runners.config import TrialConfig
from search.storage import records
from search.engine.nearcopy import NOT_RUN, differences, near_copy_of
from search.engine.prepare import StudyData
from search.studyfile.pruners import reported_value
from search.storage.backends import artifact_store
from search.studyfile.parse import StudySpec
from search.storage.trial_attrs import TrialAttrs
from search.storage.trialstore import TrialStore
from spaces import SpaceSpec, get_space

log = logging.getLogger(__name__)


class TrialFailed(RuntimeError):
    """A trial ended without a score; the reason is in its ``failure_reason`` attribute."""


class TrialWatch(Protocol):
    """Told about a run's trials as they go (search.engine.progress.RunWatch: progress and time budget)."""

    def trial_started(self, number: int, epochs: int) -> None: ...

    def epoch_done(self, number: int, record: EpochRecord, epochs: int, pruned: bool) -> bool:
        """True: stop the (unpruned) trial after this epoch: the time budget is spent."""
        ...

    def cut_reason(self, number: int) -> str | None: ...


def space_spec(spec: StudySpec) -> SpaceSpec:
    backbones = {str(b) for b in spec.choices("backbone")}
    return SpaceSpec(
        fixed=dict(spec.fixed),
        params=dict(spec.params),
        stage_counts={b: count_stages(b) for b in sorted(backbones)},
    )


@dataclass
class Objective:
    spec: StudySpec
    study_data: StudyData
    workdir: Path
    device: str | None = None
    augment_on: str | None = None  # runners.fit's: auto, loader or device (None: env, else auto)
    max_repeated_errors: int = 3
    watch: TrialWatch | None = None
    _space: SpaceSpec | None = field(default=None, repr=False)
    _errors: list[str] = field(default_factory=list, repr=False)

    def __call__(self, trial: optuna.Trial) -> float:
        if self._space is None:
            self._space = space_spec(self.spec)
        config = get_space(self.spec.space)(trial, self._space)
        TrialAttrs.set(trial, config=config.to_dict(), pruning_signal=self.spec.pruner.signal)
        twin = near_copy_of(trial)
        if twin is not None:
            reason = f"{NOT_RUN} a near copy of trial {twin.number} ({differences(trial.params, twin.params)})"
            TrialAttrs.set(trial, failure_reason=reason)  # the progress line says it (progress.describe)
            raise TrialFailed(reason)
        if self.watch is not None:
            self.watch.trial_started(trial.number, config.epochs)
        try:
            result = self._fit(trial, config)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            TrialAttrs.set(trial, failure_reason=reason, traceback=traceback.format_exc()[-4000:])
            self._errors.append(reason)
            if len(self._errors) >= self.max_repeated_errors and len(set(self._errors[-self.max_repeated_errors:])) == 1:
                raise
            raise TrialFailed(reason) from exc
        finally:
            _release_gpu_memory()
        self._errors.clear()
        cut = self.watch.cut_reason(trial.number) if self.watch is not None else None
        if result.status == "pruned" and cut and _early_stopped(result, config):
            result.status, result.reason, cut = "complete", f"early_stopping at epoch {len(result.history)}", None
        if result.status == "pruned" and cut and result.state_dict is not None and result.val_probs is not None:
            # Minutes of training are a candidate: complete, scored by its best epoch so far.
            result.status, result.reason = "complete", None
            TrialAttrs.set(trial, cut_by_budget=cut)
        TrialAttrs.set(trial, **result.to_summary())
        if result.status == "failed":
            raise TrialFailed(result.reason or "failed")
        if result.status == "pruned" and cut:  # stopped by the time budget before anything was kept
            TrialAttrs.set(trial, failure_reason=cut)
            raise TrialFailed(cut)
        if result.status == "pruned":
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        self._keep(trial, config, result)
        return float(result.best_macro_f1)

    def _fit(self, trial: optuna.Trial, config: TrialConfig) -> TrialResult:
        sd = self.study_data
        images = sd.images(config.height, config.width, config.crop)
        train = ImageSet(images, sd.train_rows, sd.data.training_labels(config.age_cutoff)[sd.train_rows],
                         sd.data.ages[sd.train_rows])
        val = ImageSet(images, sd.val_rows, sd.data.labels[sd.val_rows])

        signal = self.spec.pruner.signal
        curve: list[float] = []

        def report(record: EpochRecord) -> bool:
            # The dashboard's intermediate values are macro-F1; the pruner reads its signal from the curve.
            curve.append(reported_value(signal, record.val_macro_f1, record.val_loss))
            TrialAttrs.set(trial, pruning_curve=curve)
            trial.report(record.val_macro_f1, record.epoch)
            # After the last epoch there is nothing left to save: keep the fully trained trial.
            prune = record.epoch < config.epochs and trial.should_prune()
            cut = self.watch is not None and self.watch.epoch_done(trial.number, record, config.epochs, prune)
            log.debug(
                "trial %d epoch %d/%d: macro-F1 %.4f, val loss %.4f (study best %s)%s",
                trial.number, record.epoch, config.epochs, record.val_macro_f1, record.val_loss,
                _study_best(trial.study), " -> pruned" if prune else " -> stopped at the time budget" if cut else "",
            )
            return prune or cut

        return fit(config, train, val, reporter=report, device=self.device, augment_on=self.augment_on)

    def _keep(self, trial: optuna.Trial, config: TrialConfig, result: TrialResult) -> None:
        """Artifacts for the dashboard; a checkpoint only if the trial could enter an ensemble."""
        assert result.val_probs is not None and result.state_dict is not None  # complete trials have both
        records.upload_trial_artifacts(artifact_store(self.workdir), trial, result.val_probs, result.confusion)
        store = TrialStore(self.workdir, trial.study.study_name)
        finished = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        better = sum(1 for t in finished if t.value is not None and t.value > result.best_macro_f1)
        if better < self.spec.keep_top:
            last = (None if result.last_state_dict is None or result.last_val_probs is None
                    else (result.last_state_dict, result.last_val_probs))
            store.save_trial(trial.number, result.state_dict, result.val_probs, config.to_dict(), result.to_summary(),
                             last)
        retain_top(trial.study, store, self.spec.keep_top, current=(trial.number, result.best_macro_f1))


def retain_top(
    study: optuna.Study, store: TrialStore, keep_top: int, current: tuple[int, float] | None = None
) -> list[int]:
    """Delete checkpoints of finished trials that fell out of the top ``keep_top``.

    ``current`` is (number, value) of the trial being finished: it is not COMPLETE in the
    storage until the objective returns, but it already competes for a place.
    """
    trials = study.get_trials(deepcopy=False)
    scored = [(t.value, t.number) for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    if current is not None:
        scored.append((current[1], current[0]))
    keep = {number for _, number in sorted(scored, reverse=True)[:keep_top]}
    keep |= {t.number for t in trials if not t.state.is_finished() and (current is None or t.number != current[0])}
    return store.retain(keep)


def _early_stopped(result: TrialResult, config: TrialConfig) -> bool:
    """Whether runners.fit's early stopping ends the trial after its last epoch anyway."""
    bad_epochs = len(result.history) - (result.best_epoch or 0)
    return bad_epochs > 0 and bad_epochs >= config.patience


def _study_best(study: optuna.Study) -> str:
    values = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return f"{max(values):.4f}" if values else "-"


def _release_gpu_memory() -> None:
    """Free what a finished trial held on the GPU before the next one starts (tensors caught in
    reference cycles, then the allocator's cache). Only where CUDA was used: a full collection costs
    0.7 s or more in a process that imported torch and timm, three times a trial before, half of a
    tiny study's time on the CPU."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()
