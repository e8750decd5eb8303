"""Trials whose worker process died: who ran a trial, and failing the ones left RUNNING.

A trial whose worker process died (SIGKILL, the OOM killer) would stay RUNNING forever in a
storage without heartbeats (the journal file). Every trial records the ``host:pid`` of the
process that ran it (``TrialAttrs.worker``); :func:`reap_orphans` fails such a trial when its
worker ran on this machine and its process is gone, and re-queues it once with the same
parameters through Optuna's retry callback: what the heartbeat does for PostgreSQL.
"""

from __future__ import annotations

import copy
import logging
import os
import socket

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from search.common.optuna_compat import study_storage, trial_id
from search.storage.backends import RetryCallback, StorageSettings, no_experimental_warnings
from search.storage.trial_attrs import TrialAttrs

log = logging.getLogger(__name__)

def worker_tag(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def reap_orphans(study: optuna.Study) -> list[int]:
    """Fail RUNNING trials whose worker process on this machine no longer exists; re-queue each once.

    On every storage: with a heartbeat (PostgreSQL, SQLite) Optuna would fail such a trial only
    after its grace period, and a resume in the meantime counted it against the budget. Trials
    of other machines are still left to the heartbeat. Returns the numbers of the trials failed here.
    """
    storage = study_storage(study)
    host = socket.gethostname()
    reaped: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = TrialAttrs.read(trial).worker
        if tag is None:
            continue
        tag_host, _, tag_pid = tag.rpartition(":")
        if tag_host != host or not tag_pid.isdigit() or _alive(int(tag_pid)):
            continue
        try:
            for key, value in TrialAttrs.values(failure_reason=f"worker {tag} died during the trial").items():
                storage.set_trial_user_attr(trial_id(trial), key, value)
            if not storage.set_trial_state_values(trial_id(trial), TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another process reaped it first
        reaped.append(trial.number)
        failed = copy.deepcopy(storage.get_trial(trial_id(trial)))
        failed.user_attrs = TrialAttrs.without(failed.user_attrs, "failure_reason")
        with no_experimental_warnings():
            RetryCallback(max_retry=StorageSettings().max_retry)(study, failed)
        log.warning(
            "trial %d: its worker %s died; marked FAIL and queued once more with the same parameters",
            trial.number,
            tag,
        )
    return reaped
