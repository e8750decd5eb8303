"""benchmarks/workers.py end to end on the tiny bench: both arms run the real command and are read back
(no figure asserted: the tiny bench on a shared machine says nothing about the winner)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import workers
from tests.benchmarks.conftest import saved_result

pytestmark = pytest.mark.slow


def test_workers_runs_each_arm_at_the_same_timeout_and_saves_its_figures(
    bench_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = workers.main([*bench_args, "--study", "smoke", "--timeout", "30", "--workers", "1", "2",
                            "--work-root", str(tmp_path / "work")])
    saved = saved_result(tmp_path, "workers")
    assert saved["figures"] == figures and saved["inputs"]["workers"] == [1, 2]
    assert saved["inputs"]["timeout_s"] == 30.0
    for arm, n in zip(figures["arms"], (1, 2), strict=True):
        assert arm["workers"] == n and arm["failed"] == 0
        assert arm["finished"] == arm["complete"] + arm["pruned"]
        assert arm["trials_per_hour"] == pytest.approx(arm["finished"] / arm["wall_s"] * 3600, rel=0.01)
        if arm["candidates"]:  # a busy machine may spend an arm's 30 s on starting its processes
            assert 0.0 <= arm["best_val_macro_f1"] <= 1.0 and arm["ensemble"]
            assert 0.0 <= arm["ensemble_eval_macro_f1"] <= 1.0
    assert figures["arms"][0]["candidates"] >= 1, "one process finishes a smoke trial in 30 s"
    out = capsys.readouterr().out
    assert "| processes |" in out and "machine: " in out
    studies = sorted(p.parent.name for p in (tmp_path / "work").glob("*/*/studies.db"))
    assert studies == ["w1", "w2"], "each arm in its own fresh work folder"
