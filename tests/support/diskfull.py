"""A full disk, simulated: every ``write`` through ``open`` in the patched modules raises
``OSError(ENOSPC)``, as a real full disk does on the first block that does not fit. The file is
really opened (and created) first, so the clean-up of a half-written file is exercised too."""

from __future__ import annotations

import builtins
import errno
from types import ModuleType
from typing import Any

import pytest


class FullDiskFile:
    """A real open file whose writes fail with ENOSPC."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._file = builtins.open(*args, **kwargs)  # noqa: SIM115 (closed by __exit__)
        self.name = self._file.name

    def __enter__(self) -> FullDiskFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", self.name)


def fill_disk(monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> None:
    """Make ``open`` in each module (search.common.atomic, the writer, ...) hand out FullDiskFile."""
    for module in modules:
        monkeypatch.setattr(module, "open", FullDiskFile, raising=False)
