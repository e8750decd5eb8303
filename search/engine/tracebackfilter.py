"""Leaving out the tracebacks of failures a run expects and explains in one line itself."""

from __future__ import annotations

import logging
import re

from search.engine.nearcopy import NOT_RUN
from search.engine.objective import TrialFailed

log = logging.getLogger(__name__)


class _NoExpectedTraceback(logging.Filter):
    """Optuna logs every FAIL trial with a traceback. For an interrupt, or a trial the objective
    classified (NaN, out of memory: the reason is in the message and the traceback in the
    trial's ``traceback`` user attribute), that is noise; with -v (DEBUG) it is kept. A trial that
    was not run (``not run:``, said in one line of the run's own) loses Optuna's two warnings too."""

    def __init__(self) -> None:
        super().__init__()
        self.not_run: set[str] = set()  # trial numbers whose "failed with value" line is still to drop

    def filter(self, record: logging.LogRecord) -> bool:
        debug = log.isEnabledFor(logging.DEBUG)
        exc = record.exc_info[1] if record.exc_info else None
        number = re.match(r"Trial (\d+) failed with ", record.getMessage())
        if isinstance(exc, TrialFailed) and str(exc).startswith(NOT_RUN) and number and not debug:
            self.not_run.add(number[1])
            return False
        if number and number[1] in self.not_run and "failed with value" in record.getMessage():
            self.not_run.discard(number[1])
            return False
        expected = (KeyboardInterrupt, TrialFailed)
        if (
            record.exc_info
            and isinstance(record.exc_info[1], expected)
            and not debug
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
