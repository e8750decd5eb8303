"""Atomic writes: a file or folder appears complete under its name, or not at all.

Everything is written to a temporary name in the target's own folder (so the final
``os.replace`` is a rename on one file system, atomic on POSIX), and the temporary file or
folder is removed on any error, Ctrl-C included. New files get the ordinary mode the umask
allows (0666 & ~umask), not the private 0600 of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


def temp_name(target: Path) -> Path:
    """A fresh hidden name beside ``target``: ``.<name>.tmp-<pid>-<random>.tmp`` (the cache's
    clean-up in search/data/cache.py recognises its own by the trailing ``.tmp``)."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` for the caller to create (a file, a memmap, a
    folder); when the block ends without error it is renamed onto ``target``.

    On any error the temporary path is removed and ``target`` keeps what it held before. A
    folder can only replace a missing target or an empty folder (``os.replace`` semantics);
    :func:`swap_dir` replaces a full one. The temporary name ends in ``.tmp``: write through
    an open file where a writer would add its own suffix (``np.save`` on a path adds ``.npy``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def write_with(target: Path | str, write: Callable[[BinaryIO], object]) -> Path:
    """``write(f)`` on a new binary file that then becomes ``target`` (``np.save``, ``np.savez``)."""
    target = Path(target)
    with atomic_path(target) as tmp, open(tmp, "xb") as f:
        write(f)
    return target


def write_bytes(target: Path | str, data: bytes) -> Path:
    return write_with(target, lambda f: f.write(data))


def write_text(target: Path | str, text: str, newline: str | None = None) -> Path:
    target = Path(target)
    with atomic_path(target) as tmp, open(tmp, "x", encoding="utf-8", newline=newline) as f:
        f.write(text)
    return target


def write_json(target: Path | str, payload: Any, indent: int | None = 2) -> Path:
    """``payload`` as JSON; it is serialised before anything touches the disk, so a value JSON
    cannot hold fails without leaving a file behind."""
    return write_text(target, json.dumps(payload, indent=indent) + "\n")


def swap_dir(new: Path, target: Path) -> None:
    """Move the finished folder ``new`` to ``target``, replacing a folder there.

    The old folder is first renamed aside, and renamed back if the second rename fails, so
    ``target`` is at every moment the old folder or the new one (missing only between the two
    renames); the old one is deleted last.
    """
    if not (target.exists() or target.is_symlink()):
        os.replace(new, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    _remove(old)
