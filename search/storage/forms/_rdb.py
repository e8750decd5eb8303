"""What the RDB forms (SQLite, PostgreSQL) share: Optuna's RDBStorage with a heartbeat, so a
trial whose worker died is marked FAIL after ``grace_period_s`` and re-queued once with the same
parameters."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback

from search.common.optuna_compat import no_experimental_warnings


@dataclass(frozen=True)
class StorageSettings:
    heartbeat_interval_s: int = 30
    grace_period_s: int = 120
    max_retry: int = 1  # a killed worker's trial is tried once more with the same parameters


# Optuna 4.9 renamed the retry callback and its RDBStorage argument; the old names warn there.
RetryCallback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", RetryFailedTrialCallback)
_RETRY_ARG = ("heartbeat_stale_trial_callback" if RetryCallback is not RetryFailedTrialCallback
              else "failed_trial_callback")


def open_rdb(url: str, settings: StorageSettings, engine_kwargs: dict[str, Any] | None = None,
             lock: contextlib.AbstractContextManager[Any] | None = None) -> RDBStorage:
    with lock or contextlib.nullcontext(), no_experimental_warnings():
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=settings.heartbeat_interval_s,
            grace_period=settings.grace_period_s,
            **{_RETRY_ARG: RetryCallback(max_retry=settings.max_retry)},
        )
