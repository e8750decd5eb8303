"""How a run stops on SIGINT and SIGTERM: as on Ctrl-C, so Optuna marks the running trial FAIL
and the same command resumes the study."""

from __future__ import annotations

import _thread
import logging
import os
import signal
import threading
import time
from types import FrameType

log = logging.getLogger(__name__)

FORCE_AFTER_S = 2.0  # a second interrupt later than this after the first exits at once
RETRY_S = 0.05  # an interrupt that lands inside Optuna's storage code is delivered this much later


def in_storage_code(frame: FrameType | None) -> bool:
    """Whether the interrupted thread is inside Optuna's storage code: an exception raised there
    can leave a journal file's lock or a write half done (seen as a FileNotFoundError when the
    journal lock was released), so the worker could not record its trial FAIL."""
    storages = os.path.join("optuna", "storages")
    while frame is not None:
        if storages in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


def _deliver_later() -> None:
    threading.Timer(RETRY_S, _thread.interrupt_main, args=(signal.SIGINT,)).start()


def install_signal_handlers() -> None:
    """SIGTERM behaves like Ctrl-C: Optuna marks the running trial FAIL and the study can resume."""

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)


def install_interrupt_handlers(force_after_s: float = FORCE_AFTER_S) -> None:
    """In a worker: SIGINT and SIGTERM raise KeyboardInterrupt once, so Optuna marks the running trial FAIL.

    Ctrl-C reaches a local worker twice (from the terminal and forwarded by its launcher);
    repeats within ``force_after_s`` are ignored so they cannot cut the FAIL write short. A
    signal later than that exits at once (the trial is then left to the heartbeat or reaper).
    The first signal is held back while Optuna's storage code runs (in_storage_code) and raised
    as soon as it has returned.
    """
    first: list[float] = []
    deferred: list[int] = []  # the first signal, while it waits for Optuna's storage code to return

    def handler(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if deferred or not first:
            first[:] = first or [now]
            if in_storage_code(frame):
                deferred[:] = deferred or [signum]
                _deliver_later()
                return
            signum = deferred.pop() if deferred else signum
            raise KeyboardInterrupt(f"signal {signum}")
        if now - first[0] > force_after_s:
            log.error("interrupted again: exiting without waiting for the running trial to be recorded")
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def ignore_interrupts(force_after_s: float = FORCE_AFTER_S) -> None:
    """Once a worker's study is over there is nothing left to stop: a signal that lands while the
    process shuts down would otherwise raise inside Python's exit and kill it by SIGINT. Ignored,
    then, but as in a trial a signal later than ``force_after_s`` after the first exits at once
    (130): a worker that hangs on its way out still ends on a second Ctrl-C."""
    first: list[float] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if not first:
            first.append(now)
        elif now - first[0] > force_after_s:
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
