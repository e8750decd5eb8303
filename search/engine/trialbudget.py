"""A study's budget of trials, counted over all its workers: which trials count, and keeping to it.

The budget rule, defined here only: a trial counts against ``n_trials`` once it is finished,
complete or pruned (:data:`FINISHED`). Failed trials do not count (a failure is retried or
reported, never a result), and running ones count only as "on their way" when a worker decides
whether to start another.
"""

from __future__ import annotations

import logging

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.common.optuna_compat import heartbeat_enabled
from search.storage.reaper import reap_orphans
from search.storage.backends import no_experimental_warnings

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # the trials that count against a study's n_trials


def count_trials(study: optuna.Study, states: tuple[TrialState, ...] = FINISHED) -> int:
    """How many of the study's trials are in ``states`` (by default: finished, as the budget counts)."""
    return len(study.get_trials(deepcopy=False, states=states))


def fail_stale(study: optuna.Study) -> None:
    """Mark FAIL the trials whose worker stopped beating (heartbeat storages): not on their way."""
    if heartbeat_enabled(study):
        with no_experimental_warnings():
            optuna.storages.fail_stale_trials(study)


class StopAtBudget:
    """Optuna callback: stop when the study (all workers together) has enough finished trials, or
    this worker has seen too many failures (then ``gave_up``).

    Trials other workers are running count as on their way, so N workers do not overshoot the
    budget by N - 1; a trial that then fails leaves its own worker going, as it sees the gap.
    """

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials
        self.failures = 0
        self.gave_up = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.failures += trial.state == TrialState.FAIL
        reap_orphans(study)
        fail_stale(study)
        if count_trials(study) + count_trials(study, (TrialState.RUNNING,)) >= self.n_trials:
            study.stop()
        elif self.failures > max(10, 2 * self.n_trials):
            log.error("stopping: %d trials of this worker failed; see their failure_reason", self.failures)
            self.gave_up = True
            study.stop()
