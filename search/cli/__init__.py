"""Command-line helpers shared by every verb: the verbose flag, logging, and errors as one line.

Nothing from the study side is imported here, so ``python -m search.predict`` (search/deploy/)
uses these without Optuna. The arguments that name a stored study (``--study``, ``--name``,
``--storage``, ``--workdir``) are in search/cli/studyargs.py.
"""

from __future__ import annotations

import argparse
import errno
import logging

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def add_verbose(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="more log lines, and a traceback with an error")


def setup_logging(verbose: bool = False, quiet_level: int = logging.WARNING) -> None:
    """INFO with ``--verbose``, else ``quiet_level``; one format for every verb."""
    logging.basicConfig(level=logging.INFO if verbose else quiet_level, format=LOG_FORMAT)


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 but got {text!r}")
    return value


def report_error(log: logging.Logger, exc: BaseException, verbose: bool = False) -> int:
    """Log ``exc`` as one line (with its traceback under ``--verbose``) and return exit code 2."""
    log.error("%s", exc, exc_info=verbose)
    return 2


def os_error_line(exc: OSError, doing: str) -> str:
    """One line for an OSError met while ``doing`` (e.g. "writing the bundle"): what failed, on
    which path, and the fix (a full disk, a read-only place, a folder where a file goes)."""
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        fix = "free some disk space, or write to a disk with room, and run the same command again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "choose a place you may write to"
    elif exc.errno == errno.EISDIR:
        fix = "name a file, not a folder"
    else:
        fix = "check the path and run the same command again"
    return f"{doing} failed: {exc.strerror or exc}{where}; {fix}."
