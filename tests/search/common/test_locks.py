from __future__ import annotations

from pathlib import Path

from search.common.locks import locked


def test_a_held_lock_is_reported_to_a_caller_that_does_not_wait(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with locked(lock) as first:
        assert first is True
        with locked(lock, wait=False) as second:  # flock: a second open file description conflicts
            assert second is False
    with locked(lock, wait=False) as again:
        assert again is True
