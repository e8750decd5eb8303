"""Entry point for the two-process cache test; a module of its own so spawn can import it."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any


def build_in_child(paths: list[str], cache_dir: str, counter: str, start: Any, results: Any) -> None:
    """Wait for the start signal, then ask for the cache; decodes are slowed and counted."""
    from search.data import cache

    real = cache.load_image

    def slow_counted(path: str, *args: object, **kwargs: object):
        fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)
        time.sleep(0.01)  # make the build long enough that the other process must wait for it
        return real(path, *args, **kwargs)

    cache.load_image = slow_counted
    start.wait(timeout=60)
    arr = cache.image_cache(paths, 16, 12, "face", Path(cache_dir), key="same-data", n_jobs=2)
    _, meta = cache.cache_files(paths, 16, 12, "face", Path(cache_dir), "same-data")
    results.put(
        {
            "digest": hashlib.sha256(arr.tobytes()).hexdigest(),
            "build_id": json.loads(meta.read_text())["build_id"],
            "pid": os.getpid(),
        }
    )
