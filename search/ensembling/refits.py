"""Refits as ensemble candidates.

An all-people refit takes its trial's place: the trial's validation probabilities (the only
held-out score it has) with the refit's weights. A complete fold group joins as a member of
its own: its probabilities on the study's validation rows are out-of-fold (each person
predicted by the fold model that never saw them), so selection compares it with the study's
trials on the same people; at predict time it is the average of its K fold models.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from search.ensembling.selection import Candidate
from search.refitting.store import RefitStore, refit_numbers
from search.storage.trialstore import TrialStore, Validation

log = logging.getLogger(__name__)


def with_refits(
    trials: TrialStore, study: str, validation: Validation, candidates: list[Candidate]
) -> tuple[list[Candidate], list[str]]:
    """``candidates`` (of ``study``) with their all-people weights swapped in, plus every fold group;
    and notes on the refits left out."""
    by_number = {c.number: i for i, c in enumerate(candidates)}
    out, notes = list(candidates), []
    for number in refit_numbers(trials):
        store = RefitStore(trials, number)
        if store.has_model(store.all_dir()):
            if number in by_number:
                model = store.load_model(store.all_dir())
                out[by_number[number]] = dataclasses.replace(
                    out[by_number[number]], weights=model.weights, config=model.config, refit="all"
                )
            else:
                notes.append(
                    f"{study}#{number}/all: its trial's checkpoint and validation probabilities are gone"
                )
        for k in store.fold_groups():
            rows, probs, _ = store.load_oof(k)
            plan = store.load_plan(k)
            if plan.fingerprint != validation.fingerprint:
                notes.append(f"{study}#{number}/folds-{k}: made on other data ({plan.fingerprint[:12]})")
                continue
            position = np.full(max(int(rows.max()), int(validation.rows.max())) + 1, -1, dtype=np.int64)
            position[rows] = np.arange(len(rows))
            at = position[validation.rows]
            if np.any(at < 0):
                notes.append(f"{study}#{number}/folds-{k}: its out-of-fold rows miss validation rows")
                continue
            folds = [store.fold_dir(k, i) for i in range(k)]
            config = store.load_model(folds[0]).config
            summary = store.load_summary(k)
            labels = store.load_oof_labels(k)
            out.append(
                Candidate(
                    study,
                    number,
                    probs[at],
                    config,
                    summary["oof_macro_f1_validation_people"],
                    None,
                    refit=f"folds-{k}",
                    checkpoints=tuple(f / "weights.safetensors" for f in folds),
                    all_people=None if labels is None else (probs, labels),
                    all_people_ids=store.load_oof_people(k),
                )
            )
    return out, notes
