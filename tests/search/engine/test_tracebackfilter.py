"""search.engine.tracebackfilter: expected failures are logged without their traceback, others keep it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from search.engine.objective import TrialFailed
from search.engine.tracebackfilter import quiet_expected_tracebacks


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test_tracebackfilter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def _log_failure(logger: logging.Logger, exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:
        logger.warning("trial 3 failed", exc_info=True)


@pytest.mark.parametrize("exc", [KeyboardInterrupt("signal 15"), TrialFailed("loss is NaN")])
def test_expected_failures_lose_their_traceback(captured, exc: BaseException) -> None:
    logger, stream = captured
    quiet_expected_tracebacks()
    quiet_expected_tracebacks()  # idempotent: one filter per handler
    assert sum(type(f).__name__ == "_NoExpectedTraceback" for f in logger.handlers[0].filters) == 1
    _log_failure(logger, exc)
    assert stream.getvalue() == "trial 3 failed\n"


def test_other_failures_and_debug_runs_keep_it(captured) -> None:
    logger, stream = captured
    quiet_expected_tracebacks()
    _log_failure(logger, ValueError("a bug"))
    assert "Traceback" in stream.getvalue() and "ValueError: a bug" in stream.getvalue()
    stream.truncate(0)
    stream.seek(0)
    filter_log = logging.getLogger("search.engine.tracebackfilter")
    old = filter_log.level
    filter_log.setLevel(logging.DEBUG)  # -v: every traceback is kept
    try:
        _log_failure(logger, KeyboardInterrupt("signal 15"))
    finally:
        filter_log.setLevel(old)
    assert "Traceback" in stream.getvalue()


def test_a_trial_not_run_loses_optunas_two_warnings_other_trials_keep_theirs(captured) -> None:
    logger, stream = captured
    quiet_expected_tracebacks()
    for number, reason in ((3, "not run: a near copy of trial 0 (lr 0.00577 / 0.0058)"), (4, "loss is NaN")):
        try:
            raise TrialFailed(reason)
        except TrialFailed as exc:
            logger.warning(f"Trial {number} failed with parameters: {{}} because of the following error: {exc!r}.",
                           exc_info=True)
        logger.warning(f"Trial {number} failed with value None.")
    assert stream.getvalue().splitlines() == [
        "Trial 4 failed with parameters: {} because of the following error: TrialFailed('loss is NaN').",
        "Trial 4 failed with value None.",
    ]
