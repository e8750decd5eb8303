"""The pruning benchmark: seeds on the command line, per-seed rows, the summary over seeds, and a tiny end-to-end run."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import pytest

from benchmarks import pruning


def _study(best: float | None, epochs: int, complete: int, pruned: int, wall: float = 1.0) -> dict[str, Any]:
    return {"best_macro_f1": best, "epochs_spent": epochs, "complete": complete, "pruned": pruned, "failed": 0,
            "wall_seconds": wall}


def _rows() -> list[dict[str, Any]]:
    rows = pruning.seed_rows(0, {"none": _study(0.80, 40, 5, 0, 10.0), "successive_halving": _study(0.82, 12, 2, 3)})
    rows += pruning.seed_rows(1, {"none": _study(0.70, 40, 5, 0, 12.0), "successive_halving": _study(0.66, 20, 3, 2)})
    return rows


def test_seed_rows_compare_each_pruner_with_the_unpruned_study_of_the_same_seed() -> None:
    rows = _rows()
    assert [(r["seed"], r["pruner"]) for r in rows] == [(0, "none"), (0, "successive_halving"),
                                                         (1, "none"), (1, "successive_halving")]
    assert rows[0]["f1_diff"] == 0.0 and rows[0]["epoch_share"] == 1.0
    assert rows[1]["f1_diff"] == pytest.approx(0.02) and rows[1]["epoch_share"] == pytest.approx(0.3)
    assert rows[3]["f1_diff"] == pytest.approx(-0.04) and rows[3]["epoch_share"] == pytest.approx(0.5)


def test_summary_means_spread_and_goal_on_the_means() -> None:
    summ = pruning.summary(_rows())
    sh = summ["successive_halving"]
    assert sh["seeds"] == [0, 1]
    assert sh["mean_best_macro_f1"] == pytest.approx(0.74)
    assert sh["mean_f1_diff"] == pytest.approx(-0.01)
    assert (sh["min_f1_diff"], sh["max_f1_diff"]) == (pytest.approx(-0.04), pytest.approx(0.02))
    assert sh["mean_epoch_share"] == pytest.approx(0.4) and sh["mean_epochs_spent"] == 16
    assert (sh["complete"], sh["pruned"], sh["failed"]) == (5, 5, 0)
    # exactly on both limits counts as met; one seed worse tips it
    assert sh["goal_met"] is True
    assert "goal_met" not in summ["none"] and summ["none"]["mean_wall_seconds"] == 11.0
    worse = _rows()
    worse[3] = pruning.seed_rows(1, {"none": _study(0.70, 40, 5, 0), "successive_halving": _study(0.65, 20, 3, 2)})[1]
    assert pruning.summary(worse)["successive_halving"]["goal_met"] is False
    more_epochs = _rows()
    more_epochs[1] = pruning.seed_rows(0, {"none": _study(0.80, 40, 5, 0), "successive_halving": _study(0.9, 13, 2, 3)})[1]
    assert pruning.summary(more_epochs)["successive_halving"]["goal_met"] is False


def test_a_seed_without_a_complete_trial_leaves_the_means_undefined_and_the_goal_unmet() -> None:
    rows = _rows()
    rows[3] = pruning.seed_rows(1, {"none": _study(0.70, 40, 5, 0), "successive_halving": _study(None, 4, 0, 4)})[1]
    assert rows[3]["f1_diff"] is None and rows[3]["epoch_share"] == pytest.approx(0.1)
    sh = pruning.summary(rows)["successive_halving"]
    assert sh["mean_f1_diff"] is None and sh["mean_best_macro_f1"] is None and sh["goal_met"] is False
    assert sh["mean_epoch_share"] == pytest.approx(0.2)
    assert "n/a" in pruning.summary_table(pruning.summary(rows)) and "not met" in pruning.summary_table(pruning.summary(rows))


def _parse(argv: list[str]) -> argparse.Namespace:
    return pruning.build_parser().parse_args(argv)


def test_seeds_flags() -> None:
    assert pruning.selected_seeds(_parse([])) == [0, 1, 2]
    assert pruning.selected_seeds(_parse(["--seeds", "3, 5"])) == [3, 5]
    assert pruning.selected_seeds(_parse(["--sampler-seed", "7"])) == [7]
    with pytest.raises(SystemExit, match="pass only one"):
        pruning.selected_seeds(_parse(["--seeds", "1", "--sampler-seed", "2"]))
    for bad in ("1,1", "a,2", ","):
        with pytest.raises(argparse.ArgumentTypeError, match=repr(bad)):
            pruning.seeds_arg(bad)
    with pytest.raises(SystemExit, match="'none,median'"):
        pruning.selected_pruners(_parse(["--pruners", "none,median"]))
    assert pruning.selected_pruners(_parse([])) == ["hyperband", "successive_halving", "median"]
    assert pruning.selected_pruners(_parse(["--pruners", "percentile"])) == ["percentile"]


def test_defaults_mirror_a_real_study_and_only_the_pruner_and_seed_differ() -> None:
    args = _parse([])
    assert (args.trials, args.epochs) == (24, 8)
    docs = {(p, s): pruning.study_doc(args, p, s) for p in ("none", "hyperband", "median") for s in (0, 2)}
    assert docs["hyperband", 2]["sampler"]["seed"] == 2 and docs["hyperband", 2]["split"]["seed"] == 0
    # the pruners compare what the shipped study files' pruner compares (the validation loss)
    assert docs["median", 0]["pruner"] == {"name": "median", "min_resource": 1, "signal": "val_loss"}
    assert docs["hyperband", 0]["pruner"] == {"name": "hyperband", "min_resource": 1, "reduction_factor": 3,
                                              "signal": "val_loss"}
    assert pruning.study_doc(_parse(["--signal", "macro_f1"]), "median", 0)["pruner"] == {
        "name": "median", "min_resource": 1, "signal": "macro_f1"}
    assert docs["none", 0]["fixed"]["ema_decay"] == 0.999
    assert pruning.study_doc(_parse(["--ema-decay", "0"]), "none", 0)["fixed"]["ema_decay"] == 0.0
    assert docs["none", 0]["fixed"]["warmup_epochs"] == 0.0
    assert pruning.study_doc(_parse(["--warmup-epochs", "0.5"]), "median", 0)["fixed"]["warmup_epochs"] == 0.5
    for (_, seed), doc in docs.items():
        assert doc["fixed"] == docs["none", 0]["fixed"] and doc["params"] == docs["none", 0]["params"]
        assert doc["fixed"]["seed"] == 0 and doc["sampler"]["seed"] == seed
    later = _parse(["--min-resource", "2"])
    assert pruning.study_doc(later, "hyperband", 0)["pruner"]["min_resource"] == 2
    assert pruning.study_doc(later, "none", 0)["pruner"] == {"name": "none"}
    assert PRUNER_SETTINGS_UNCHANGED == pruning.PRUNER_SETTINGS["hyperband"]  # the table is not written to


PRUNER_SETTINGS_UNCHANGED = {"name": "hyperband", "min_resource": 1, "reduction_factor": 3}


@pytest.mark.slow
def test_two_seeds_end_to_end_save_per_seed_rows_and_a_consistent_summary(bench_args: list[str], tmp_path: Path) -> None:
    trials, epochs = 3, 2
    out = pruning.main(bench_args + ["--seeds", "0,1", "--pruners", "successive_halving", "--trials", str(trials),
                                     "--signal", "macro_f1",
                                     "--epochs", str(epochs), "--height", "32", "--width", "24", "--startup-trials", "1",
                                     "--work-root", str(tmp_path / "w"), "--device", "cpu"])
    saved = json.loads((tmp_path / "results" / "pruning.json").read_text())
    assert set(saved) == {"benchmark", "created", "command", "machine", "inputs", "figures", "notes"}
    assert saved["inputs"]["seeds"] == [0, 1] and saved["machine"]["torch_threads"] == 1
    assert saved["inputs"]["study_files"]["successive_halving"]["pruner"]["signal"] == "macro_f1"
    rows, summ = saved["figures"]["per_seed"], saved["figures"]["summary"]
    assert [(r["seed"], r["pruner"]) for r in rows] == [(0, "none"), (0, "successive_halving"),
                                                         (1, "none"), (1, "successive_halving")]
    for r in rows:
        assert r["trials"] == trials and r["complete"] + r["pruned"] + r["failed"] == trials
        assert r["epochs_spent"] == sum(r["epochs_per_trial"])
        assert [len(c["macro_f1"]) for c in r["curves"]] == r["epochs_per_trial"]
        assert [len(c["val_loss"]) for c in r["curves"]] == r["epochs_per_trial"]
        assert all(v is not None and v > 0 for c in r["curves"] for v in c["val_loss"])
        assert all(0 <= v <= 1 for c in r["curves"] for v in c["macro_f1"])  # F1, whatever the pruner was shown
        assert all(c["state"] in ("COMPLETE", "PRUNED") and "lr" in c["params"] for c in r["curves"])
        if r["pruner"] == "none":
            assert r["epochs_spent"] == trials * epochs and r["pruned"] == 0 and r["f1_diff"] == 0.0
        else:
            ref = next(x for x in rows if x["seed"] == r["seed"] and x["pruner"] == "none")
            assert r["epoch_share"] == pytest.approx(r["epochs_spent"] / (trials * epochs))
            assert r["f1_diff"] == pytest.approx(r["best_macro_f1"] - ref["best_macro_f1"])
    for pruner, s in summ.items():
        mine = [r for r in rows if r["pruner"] == pruner]
        assert s["mean_best_macro_f1"] == pytest.approx(statistics.fmean(r["best_macro_f1"] for r in mine))
        assert s["mean_f1_diff"] == pytest.approx(statistics.fmean(r["f1_diff"] for r in mine))
        assert s["min_f1_diff"] == min(r["f1_diff"] for r in mine) and s["max_f1_diff"] == max(r["f1_diff"] for r in mine)
        assert s["mean_epoch_share"] == pytest.approx(statistics.fmean(r["epoch_share"] for r in mine))
    sh = summ["successive_halving"]
    assert sh["goal_met"] == (sh["mean_f1_diff"] >= -0.01 and sh["mean_epoch_share"] <= 0.40)
    assert out["summary"] == summ and out["path"] == tmp_path / "results" / "pruning.json"
    assert not list((tmp_path / "w").iterdir())  # the temporary studies are removed
