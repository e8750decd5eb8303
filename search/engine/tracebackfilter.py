"""Leaving out the tracebacks of failures a run expects and explains in one line itself."""

from __future__ import annotations

import logging

from search.engine.objective import TrialFailed

log = logging.getLogger(__name__)


class _NoExpectedTraceback(logging.Filter):
    """Optuna logs every FAIL trial with a traceback. For an interrupt, or a trial the objective
    classified (NaN, out of memory: the reason is in the message and the traceback in the
    trial's ``traceback`` user attribute), that is noise; with -v (DEBUG) it is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        expected = (KeyboardInterrupt, TrialFailed)
        if (
            record.exc_info
            and isinstance(record.exc_info[1], expected)
            and not log.isEnabledFor(logging.DEBUG)
        ):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_tracebacks() -> None:
    """Drop tracebacks of interrupts and classified trial failures from every log handler (idempotent)."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, _NoExpectedTraceback) for f in handler.filters):
                handler.addFilter(_NoExpectedTraceback())
