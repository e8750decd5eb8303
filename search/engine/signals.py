"""How a run stops on SIGINT and SIGTERM: as on Ctrl-C, so Optuna marks the running trial FAIL
and the same command resumes the study."""

from __future__ import annotations

import logging
import os
import signal
import time

log = logging.getLogger(__name__)

FORCE_AFTER_S = 2.0  # a second interrupt later than this after the first exits at once


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
    """
    first: list[float] = []

    def handler(signum: int, frame: object) -> None:
        now = time.monotonic()
        if not first:
            first.append(now)
            raise KeyboardInterrupt(f"signal {signum}")
        if now - first[0] > force_after_s:
            log.error("interrupted again: exiting without waiting for the running trial to be recorded")
            os._exit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)
