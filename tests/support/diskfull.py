"""A full disk, simulated: every ``write`` through ``open`` in the patched modules raises
``OSError(ENOSPC)`` (``benchmarks.common.FullDiskFile``, which the attack benchmark uses too)."""

from __future__ import annotations

from types import ModuleType

import pytest

from benchmarks.common import FullDiskFile


def fill_disk(monkeypatch: pytest.MonkeyPatch, *modules: ModuleType) -> None:
    """Make ``open`` in each module (search.common.atomic, the writer, ...) hand out FullDiskFile."""
    for module in modules:
        monkeypatch.setattr(module, "open", FullDiskFile, raising=False)
