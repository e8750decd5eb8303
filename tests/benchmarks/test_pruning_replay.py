"""Replaying pruning rules on recorded curves: rule parsing, file checks, and the replay against hand-made curves."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import pruning_replay
from search.studyfile.pruners import PrunerSpec

# Three epochs per trial. Trial 1 is the study's best; trial 2 is hopeless after epoch 1.
CURVES = [[0.4, 0.6, 0.8], [0.3, 0.7, 0.9], [0.1, 0.15, 0.2], [0.35, 0.5, 0.55]]


def _result(tmp_path: Path, curves: list[list[float]] = CURVES, best: float | None = None, **extra: Any) -> Path:
    row = {"seed": 0, "pruner": "none", "best_macro_f1": max(map(max, curves)) if best is None else best,
           "curves": [{"number": i, "state": "COMPLETE", "macro_f1": c} for i, c in enumerate(curves)], **extra}
    doc = {"inputs": {"epochs": 3}, "figures": {"per_seed": [row, {"seed": 0, "pruner": "median", "curves": []}]}}
    path = tmp_path / "pruning.json"
    path.write_text(json.dumps(doc))
    return path


def test_rules_parse_over_the_benchmark_defaults() -> None:
    rule = pruning_replay.parse_rule("percentile:percentile=40, min_resource=2")
    assert rule.spec == PrunerSpec(name="percentile", percentile=40.0, min_resource=2)
    assert pruning_replay.parse_rule("hyperband").spec == PrunerSpec(name="hyperband", min_resource=1)
    for bad, says in [("nope", "unknown pruner"), ("median:patience=2", "key=value"), ("median:min_resource",
                      "key=value"), ("median:min_resource=x", "must be a number"),
                      ("median:n_startup_trials=-1", "n_startup_trials must be"),
                      ("percentile:percentile=120", "percentile must be in")]:
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            pruning_replay.parse_rule(bad)


def test_replay_reports_epochs_best_and_whether_the_best_trial_survived(tmp_path: Path) -> None:
    (study,) = pruning_replay.load_recorded(_result(tmp_path))
    unpruned = pruning_replay.replay(study, PrunerSpec(name="none"))
    assert unpruned["epochs_spent"] == 12 and unpruned["best_macro_f1"] == 0.9 and unpruned["kept_best"]
    # median with 2 start-up trials from epoch 1: trial 2 (0.1 < median 0.35) stops after epoch 1; trial 3's
    # best so far (0.5 at epoch 2) is below the median of trials 0-1 at epoch 2 (0.65), so it stops there.
    median = pruning_replay.replay(study, PrunerSpec(name="median", min_resource=1))
    assert median["epochs_per_trial"] == [3, 3, 1, 2] and median["epochs_spent"] == 9
    assert (median["complete"], median["pruned"], median["best_macro_f1"], median["kept_best"]) == (2, 2, 0.9, True)
    # Hyperband's brackets come from the study name, which replay fixes: the same answer every time.
    runs = [pruning_replay.replay(study, PrunerSpec(name="hyperband", min_resource=1)) for _ in range(3)]
    assert runs[0]["epochs_per_trial"] == runs[1]["epochs_per_trial"] == runs[2]["epochs_per_trial"]
    # The last epoch is never pruned: a rule that would stop everything still lets trials finish.
    harsh = pruning_replay.replay(study, PrunerSpec(name="percentile", percentile=1.0, min_resource=3,
                                                    n_startup_trials=0))
    assert harsh["epochs_per_trial"] == [3, 3, 3, 3]


def test_main_compares_rules_with_the_unpruned_study_and_saves_json(tmp_path: Path) -> None:
    path = _result(tmp_path)
    out = pruning_replay.main([str(path), "--rules", "median", "hyperband", "--results-dir", str(tmp_path / "res")])
    saved = json.loads((tmp_path / "res" / "pruning_replay.json").read_text())
    rows = {r["pruner"]: r for r in saved["figures"]["per_study"]}
    assert set(rows) == {"none", "median", "hyperband"}
    assert rows["median"]["epoch_share"] == pytest.approx(9 / 12) and rows["median"]["f1_diff"] == 0.0
    assert saved["figures"]["summary"]["median"]["goal_met"] is False  # 75 % of the epochs
    assert out["path"] == tmp_path / "res" / "pruning_replay.json"


def test_files_that_cannot_be_replayed_are_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no learning curves"):
        pruning_replay.load_recorded(_result(tmp_path, curves=[], best=0.0))
    with pytest.raises(SystemExit, match="fewer than 3 epochs"):
        pruning_replay.load_recorded(_result(tmp_path, curves=[[0.1, 0.2, 0.3], [0.1, 0.2]]))
    with pytest.raises(SystemExit, match="not the recorded best"):
        pruning_replay.load_recorded(_result(tmp_path, best=0.5))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit, match="bad.json: not a benchmarks.pruning result"):
        pruning_replay.load_recorded(bad)
    with pytest.raises(SystemExit, match="distinct rules"):
        pruning_replay.main([str(_result(tmp_path)), "--rules", "median", "median"])


def test_the_val_loss_signal_is_shown_to_the_pruner_while_f1_values_the_trials(tmp_path: Path) -> None:
    path = _result(tmp_path)
    doc = json.loads(path.read_text())
    # Losses that rank trial 2 (hopeless by F1) best at epoch 1 and trial 3 worst.
    losses = [[1.0, 0.8, 0.6], [1.1, 0.7, 0.5], [0.5, 0.9, 0.9], [1.5, 1.4, 1.3]]
    for curve, loss in zip(doc["figures"]["per_seed"][0]["curves"], losses, strict=True):
        curve["val_loss"] = loss
    path.write_text(json.dumps(doc))
    (study,) = pruning_replay.load_recorded(path)
    median = pruning_replay.replay(study, PrunerSpec(name="median", min_resource=1), signal="val_loss")
    # Trial 2 (-0.5 beats the median -1.05 at epoch 1) runs out on its best-so-far loss, though its F1 is hopeless;
    # trial 3 (-1.5 against -1.0) stops after epoch 1. By F1 it was the other way round (see above).
    assert median["epochs_per_trial"] == [3, 3, 3, 1]
    assert median["best_macro_f1"] == 0.9
    with pytest.raises(SystemExit, match="validation losses were not recorded"):
        pruning_replay.replay(pruning_replay.load_recorded(_result(tmp_path))[0], PrunerSpec(name="median"),
                              signal="val_loss")
