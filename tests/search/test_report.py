from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna

from search.report import main, write_report
from tests.search.conftest import SmokeRun

TITLES = ("Optimisation history", "Intermediate values (pruning)", "Parameter importances",
          "By age cutoff", "By backbone", "Per-class F1", "Confusion matrix")


def _recorded_study(storage: str, signal: str | None = None) -> optuna.Study:
    """A study with the records the objective writes, from a cheap stand-in objective."""
    study = optuna.create_study(study_name="fake", storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    rng = np.random.default_rng(0)

    def objective(trial: optuna.Trial) -> float:
        backbone = trial.suggest_categorical("backbone", ["a", "b"])
        cutoff = trial.suggest_categorical("age_cutoff", [58, 59, 60])
        gamma = trial.suggest_float("focal_gamma", 0.0, 5.0)
        value = 0.5 + 0.1 * (backbone == "a") - 0.02 * gamma + 0.01 * (cutoff == 59)
        history = [{"epoch": e, "val_macro_f1": value * e / 2, "val_loss": 2.0 / e} for e in (1, 2)]
        for h in history:
            trial.report(-h["val_loss"] if signal == "val_loss" else h["val_macro_f1"], h["epoch"])
        trial.set_user_attr("history", history)
        if signal is not None:
            trial.set_user_attr("pruning_signal", signal)
        trial.set_user_attr("config", {"backbone": backbone, "age_cutoff": cutoff, "focal_gamma": gamma})
        trial.set_user_attr("per_class_f1", rng.random(18).round(3).tolist())
        trial.set_user_attr("confusion", rng.integers(0, 9, (18, 18)).tolist())
        return value

    study.optimize(objective, n_trials=8)
    return study


def test_report_writes_every_figure(tmp_path: Path) -> None:
    study = _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}")
    page = write_report(study, tmp_path / "report.html").read_text()
    for title in TITLES:
        assert f"<h2>{title}</h2>" in page
    assert page.count("Plotly.newPlot") == len(TITLES)
    assert "8 complete" in page


def test_a_val_loss_signal_is_named_and_the_f1_curves_shown_beside_it(tmp_path: Path) -> None:
    study = _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}", signal="val_loss")
    page = write_report(study, tmp_path / "report.html").read_text()
    assert "<h2>Intermediate values (pruning, negated validation loss)</h2>" in page
    assert "<h2>Intermediate values (pruning)</h2>" not in page
    assert "<h2>Validation macro-F1 by epoch</h2>" in page and "trial 7 (complete)" in page
    assert page.count("Plotly.newPlot") == len(TITLES) + 1


def test_report_of_the_smoke_study(smoke_run: SmokeRun, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["--study", "smoke", "--storage", smoke_run.storage, "--out", str(out)]) == 0
    page = out.read_text()
    for title in ("Optimisation history", "Intermediate values (pruning)", "By age cutoff", "Confusion matrix"):
        assert f"<h2>{title}</h2>" in page


def test_report_on_unknown_study_is_a_clear_error(smoke_run: SmokeRun, tmp_path: Path, capsys) -> None:
    assert main(["--name", "nope", "--storage", smoke_run.storage, "--out", str(tmp_path / "x.html")]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_report_needs_a_study_file_or_a_stored_name(smoke_run: SmokeRun, tmp_path: Path, capsys) -> None:
    assert main(["--storage", smoke_run.storage, "--out", str(tmp_path / "x.html")]) == 2
    assert "--study FILE" in capsys.readouterr().err and not (tmp_path / "x.html").exists()
    assert main(["--name", "smoke", "--storage", smoke_run.storage, "--out", str(tmp_path / "x.html")]) == 0


def test_report_out_naming_a_folder_is_one_line(tmp_path: Path, capsys) -> None:
    """Issue 23: --out naming a folder was a traceback from the final rename."""
    _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}")
    folder = tmp_path / "reports"
    folder.mkdir()
    code = main(["--name", "fake", "--storage", f"sqlite:///{tmp_path / 'fake.db'}", "--out", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and f"--out {folder} is a folder; name an HTML file" in err
    assert len(err.strip().splitlines()) == 1 and list(folder.iterdir()) == []


def test_report_on_a_full_disk_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    import search.atomic
    from tests.support.diskfull import fill_disk

    study = _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}")
    fill_disk(monkeypatch, search.atomic)
    out = tmp_path / "r.html"
    code = main(["--name", "fake", "--storage", f"sqlite:///{tmp_path / 'fake.db'}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "free some disk space" in err
    assert study.trials and not out.exists() and not list(tmp_path.glob(".r.html*")), "no partial file left"
