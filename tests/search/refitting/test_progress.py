"""The refit's progress: the ETA from the expected pace, then from the epochs done; a bar on a
terminal, log lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from search.refitting.progress import RefitProgress, refit_progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_eta_starts_at_the_expected_pace_then_follows_the_epochs_done() -> None:
    clock = Clock()
    p = RefitProgress(models=2, epochs=8, expected_s=80.0, clock=clock)
    assert p.eta() == 80.0
    p.model_started("trial 3 fold 1/2")
    clock.now += 30.0
    p.epoch_done()
    p.epoch_done()  # 2 epochs in 30 s: 15 s each, 6 to go
    assert p.eta() == pytest.approx(90.0)
    assert p.text() == "2/8 epochs · model 1/2 (trial 3 fold 1/2) · 0:30 · ETA 1:30"
    p.skipped(4)  # the second model did not fit in the time left
    assert p.epochs == 4 and p.eta() == pytest.approx(30.0)
    assert RefitProgress(1, 4, clock=clock).eta() is None  # no pace known yet


def test_log_lines_without_a_terminal(caplog) -> None:
    p = refit_progress(1, 2, 10.0, stream=io.StringIO())
    assert not p.wants_bar
    with caplog.at_level(logging.INFO, logger="search.refitting.progress"), p.showing():
        p.model_started("trial 0 fold 1/2")
        p.epoch_done()
        p.epoch_done()
        p.model_done("trial 0 fold 1/2", trained=True)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("refit: trial 0 fold 1/2 done | 2/2 epochs · model 1/1") and "ETA 0:00" in line


def test_a_bar_on_a_terminal() -> None:
    stream = Terminal()
    p = refit_progress(2, 4, 40.0, stream=stream)
    assert p.wants_bar
    with p.showing():
        p.model_started("trial 0 fold 1/2")
        p.epoch_done()
    drawn = stream.getvalue()
    assert "refit |" in drawn and "1/4 epochs · model 1/2 (trial 0 fold 1/2)" in drawn and "ETA" in drawn
