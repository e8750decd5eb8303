"""A two-trial smoke study and its ensemble logged to a real local MLflow store, read back through
MLflow's own client."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

pytest.importorskip("mlflow", reason='the track extra is not installed: pip install -e ".[track]"')

from mlflow.tracking import MlflowClient  # noqa: E402

from search.ensemble import main as ensemble_main  # noqa: E402
from search.run import main as run_main  # noqa: E402
from search.engine.track.mlflow_tracker import default_uri  # noqa: E402
from search.engine.track.records import metric_name  # noqa: E402
from search.storage.trialstore import TrialStore  # noqa: E402


@pytest.fixture(scope="module")
def tracked(tiny_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workdir = tmp_path_factory.mktemp("tracked")
    storage = f"sqlite:///{workdir / 'studies.db'}"
    common = ["--study", "smoke", "--storage", storage, "--workdir", str(workdir)]
    assert run_main([*common, "--data", str(tiny_bench), "--n-trials", "2", "--device", "cpu",
                     "--track", "mlflow"]) == 0
    assert ensemble_main([*common, "--no-eval", "--track", "mlflow"]) == 0
    return workdir, storage


def test_each_trial_is_a_run_with_its_config_epochs_per_class_f1_and_confusion(tracked: tuple[Path, str]) -> None:
    workdir, storage = tracked
    study = optuna.load_study(study_name="smoke", storage=storage)
    client = MlflowClient(tracking_uri=default_uri(workdir))
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None and experiment.artifact_location.startswith((workdir / "mlartifacts").as_uri())
    runs = {r.data.tags["optuna.trial"]: r for r in client.search_runs([experiment.experiment_id],
                                                                      "tags.kind = 'trial'")}
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 2 and sorted(runs) == sorted(str(t.number) for t in finished)
    logged = [v for r in runs.values() for v in (*r.data.params.values(), *r.data.tags.values())]
    assert not [v for v in logged if "studies.db" in v]  # the storage URL (and so any password) is never logged
    for trial in finished:
        run = runs[str(trial.number)]
        config = trial.user_attrs["config"]
        assert run.data.params["backbone"] == config["backbone"]
        assert float(run.data.params["lr"]) == pytest.approx(config["lr"])
        assert run.data.params["age_cutoff"] == str(config["age_cutoff"])
        assert run.data.tags["state"] == trial.state.name.lower()
        history = trial.user_attrs["history"]
        f1 = client.get_metric_history(run.info.run_id, "val_macro_f1")
        loss = client.get_metric_history(run.info.run_id, "val_loss")
        f1 = sorted(f1, key=lambda m: m.step)
        assert [m.step for m in f1] == [h["epoch"] for h in history]
        assert [m.value for m in f1] == pytest.approx([h["val_macro_f1"] for h in history])
        assert [m.value for m in sorted(loss, key=lambda m: m.step)] == pytest.approx([h["val_loss"] for h in history])
        per_class = trial.user_attrs["per_class_f1"]
        assert [run.data.metrics[f"f1_class_{i:02d}"] for i in range(18)] == pytest.approx(per_class)
        confusion = json.loads(Path(client.download_artifacts(run.info.run_id, "confusion.json",
                                                              str(workdir / f"dl{trial.number}"))).read_text())
        assert confusion["matrix"] == trial.user_attrs["confusion"]
        if trial.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED" and run.data.metrics["macro_f1"] == pytest.approx(trial.value)
        else:
            assert run.info.status == "KILLED" and "macro_f1" not in run.data.metrics


def test_the_ensemble_is_one_more_run_with_the_scores_search_ensemble_saved(tracked: tuple[Path, str]) -> None:
    workdir, _ = tracked
    saved = json.loads((TrialStore(workdir, "smoke").root / "ensemble.json").read_text())
    client = MlflowClient(tracking_uri=default_uri(workdir))
    experiment = client.get_experiment_by_name("smoke")
    (run,) = client.search_runs([experiment.experiment_id], "tags.kind = 'ensemble'")
    assert run.data.tags["source"] == "search.ensemble" and run.info.status == "FINISHED"
    assert run.data.params["candidates"] == str(len(saved["candidates"]))
    for score in saved["honest"]["scores"]:
        key = metric_name(f"heldout_macro_f1/{score['method']}")  # "selected + decision rule" -> selected_decision_rule
        assert run.data.metrics[key] == pytest.approx(score["macro_f1"])
    assert any(k.startswith("insample_macro_f1/") for k in run.data.metrics)


def test_the_next_lines_say_how_to_view_the_runs(tmp_path: Path) -> None:
    from search.engine.options import RunOptions, plan_run
    from search.engine.runstudy import next_commands

    lines = next_commands(plan_run(RunOptions(study="smoke", workdir=tmp_path, track="mlflow")))
    assert f"  tracker:   mlflow ui --backend-store-uri {default_uri(tmp_path)}" in lines
    lines = next_commands(plan_run(RunOptions(study="smoke", workdir=tmp_path, track="wandb")))
    assert any(line.startswith(f"  tracker:   wandb sync {tmp_path / 'wandb'}/offline-run-*") for line in lines)


def test_a_tracking_uri_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    from search.engine.track import open_tracker

    with pytest.raises(ValueError, match=r"--track mlflow: cannot open the tracker at --track-to nosuch://"):
        open_tracker("mlflow", tmp_path, "smoke", "nosuch://somewhere")


def test_a_tracker_that_is_not_installed_is_one_line_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from search.engine.track import check_installed

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ValueError, match=r'--track mlflow needs the mlflow package.*pip install -e "\.\[track\]"'):
        check_installed("mlflow")
