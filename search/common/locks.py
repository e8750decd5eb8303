"""The one file lock of the harness: an exclusive ``flock`` on a lock file, held for a ``with``
block, between processes (SQLite creation, the image cache build, the synthetic data)."""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def locked(lock_path: Path, wait: bool = True) -> Iterator[bool]:
    """Hold ``lock_path``'s lock for the block. With ``wait=False`` the block runs at once and
    gets False when another process holds the lock (and True when it got it)."""
    with open(lock_path, "a+") as fh:
        t0 = time.monotonic()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        waited = time.monotonic() - t0
        if waited > 1.0:
            log.info("waited %.1f s for %s", waited, lock_path)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
