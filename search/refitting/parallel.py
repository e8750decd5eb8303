"""The refit phase's fold models in several processes: as many as the search's trial processes.

The missing fold models of the chosen groups, best trial first, are dealt round robin to up to
``workers`` spawned processes (search/engine/launcher.py's slots: a GPU each, or ``cores // workers``
torch threads each). A process trains its models one after another, each only if it fits in the
time left (search/engine/budget.py's ``RefitBudget``), and saves each as it ends, so a killed or
interrupted phase resumes as the one-process phase does: the next run trains only what is
missing. Then the parent reads the groups back for their out-of-fold scores.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from search.engine.budget import RefitBudget
from search.engine.launcher import WorkerSlot, _environment, plan_workers
from search.engine.options import RunPlan
from search.refitting.progress import RefitProgress
from search.refitting.store import RefitStore
from search.refitting.train import (
    DEFAULT_EPOCHS,
    ModelRun,
    RefitContext,
    choose_trials,
    fold_plan,
    open_refit,
    refit_config,
    refit_folds,
)

log = logging.getLogger("search.refit")


@dataclass(frozen=True)
class FoldJob:
    trial: int
    fold: int


def missing_folds(ctx: RefitContext, trial: FrozenTrial, k: int) -> list[int]:
    """Fold indices of ``trial`` without a model yet, or with one a time budget cut short; writes (or
    checks) the group's fold plan."""
    store = RefitStore(ctx.trials, trial.number)
    store.save_plan(fold_plan(ctx, k))
    return [i for i in range(k) if not store.has_whole_model(store.fold_dir(k, i))]


def deal(jobs: list[FoldJob], workers: int) -> list[list[FoldJob]]:
    """Round robin: process ``i`` gets jobs ``i, i + n, ...``, so the best trial's folds start first."""
    n = max(1, min(workers, len(jobs)))
    return [jobs[i::n] for i in range(n)]


def refit_in_processes(
    ctx: RefitContext, plan: RunPlan, trials: list[FrozenTrial], k: int, left: float | None, workers: int
) -> list[dict[str, Any]]:
    """Train the missing fold models of ``trials`` of the study ``ctx`` opened in up to ``workers``
    processes within ``left`` seconds (None: no limit); the groups' reports, as ``refit_folds``
    gives them."""
    name = ctx.study.study_name
    missing = {t.number: missing_folds(ctx, t, k) for t in trials}
    jobs = [FoldJob(t.number, i) for t in trials for i in missing[t.number]]
    deadline = None if left is None else time.time() + left
    shares = deal(jobs, workers)
    slots = plan_workers(len(shares), plan.options.device, threads=plan.options.threads)
    level = logging.getLogger().getEffectiveLevel()
    spawn = multiprocessing.get_context("spawn")
    procs = []
    try:
        for slot, share in zip(slots, shares):
            with _environment(slot.env):  # a spawned process starts with the parent's environment
                proc = spawn.Process(target=_refit_process, args=(plan, name, k, share, deadline, slot, level),
                                     name=f"refit-{slot.index}")
                proc.start()
            procs.append(proc)
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        for proc in procs:
            proc.terminate()  # a model killed mid-epoch is not saved; the next run trains it again
            proc.join()
        raise
    failed = [p.name for p in procs if p.exitcode not in (0, None)]
    if failed:
        log.error("refit: %s ended with an error (see above); the models they saved are kept", ", ".join(failed))
    reports = []
    for trial in trials:  # nothing left to train here: each group's state and out-of-fold score
        report = refit_folds(ctx, trial, k, DEFAULT_EPOCHS, RefitBudget(0.0), plan.options.device,
                             plan.options.augment_on, folds=())
        store = RefitStore(ctx.trials, trial.number)
        report["runs"] = [vars(ModelRun(f"fold {i}", 0.0, store.has_whole_model(store.fold_dir(k, i)),
                                        store.cut_at(store.fold_dir(k, i))))
                          for i in missing[trial.number]]
        reports.append(report)
    return reports


def _refit_process(
    plan: RunPlan, name: str, k: int, jobs: list[FoldJob], deadline: float | None, slot: WorkerSlot, level: int
) -> None:
    """A spawned process: train ``jobs`` in order, each only if it fits before ``deadline``."""
    os.environ.update(slot.env)
    logging.basicConfig(level=level, format=f"%(asctime)s r{slot.index} %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    import torch

    torch.set_num_threads(slot.threads)
    code = 0
    try:
        ctx = open_refit(name, plan.storage_url, plan.workdir)
        by_number = {t.number: t for t in choose_trials(ctx.study, sorted({j.trial for j in jobs}))}
        epochs = sum(refit_config(by_number[j.trial], DEFAULT_EPOCHS).epochs for j in jobs)
        progress = RefitProgress(len(jobs), epochs, bar=False, stream=sys.stderr)  # N processes: log lines
        for job in jobs:
            budget = RefitBudget(None if deadline is None else deadline - time.time())
            refit_folds(ctx, by_number[job.trial], k, DEFAULT_EPOCHS, budget, slot.device,
                        plan.options.augment_on, progress, folds=(job.fold,))
    except KeyboardInterrupt:
        code = 130  # the model in training is not saved; the next run trains it
    except Exception:
        log.exception("refit process %d failed", slot.index)
        code = 1
    logging.shutdown()
    sys.exit(code)
