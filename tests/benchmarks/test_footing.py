"""benchmarks/footing.py end to end on the tiny bench (no figure asserted, only what it computes and saves)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import footing


def test_footing_scores_both_epochs_of_each_trial_and_saves_them(bench_args: list[str], tmp_path: Path) -> None:
    figures = footing.main([*bench_args, "--trials", "2", "--epochs", "3", "--image-size", "32",
                            "--work-root", str(tmp_path / "work")])
    saved = json.loads((tmp_path / "results" / "footing.json").read_text())
    assert saved["figures"]["mean_optimism_best_epoch"] == figures["mean_optimism_best_epoch"]
    trials = figures["trials"]
    assert len(trials) == 2
    for t in trials:
        assert t["val_best"] >= t["val_last"]  # the best epoch is the best on the validation people
        assert 1 <= t["best_epoch"] <= t["epochs_run"] <= 3
        if t["best_epoch"] == t["epochs_run"]:
            assert t["val_best"] == t["val_last"] and t["eval_best"] == t["eval_last"]
    mean = sum(t["val_best"] - t["eval_best"] for t in trials) / 2
    assert figures["mean_optimism_best_epoch"] == pytest.approx(mean)
