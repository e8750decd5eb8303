from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna

from search.report import (BY_BACKBONE, BY_CUTOFF, BY_HEAD, F1_BY_EPOCH, HISTORY, IMPORTANCES, LOSS_SIGNAL, main,
                           old_band_scores, write_report)
from tests.search.conftest import SmokeRun
from tests.support.tiny_study import TinyStudy

TITLES = (HISTORY, F1_BY_EPOCH, IMPORTANCES, BY_CUTOFF, BY_BACKBONE,
          "Per-class validation F1 of the best trial", "Validation confusion matrix of the best trial")


def _recorded_study(storage: str, signal: str | None = None, heads: tuple[str, ...] = ()) -> optuna.Study:
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
        config = {"backbone": backbone, "age_cutoff": cutoff, "focal_gamma": gamma}
        if heads:
            config["head"] = heads[trial.number % len(heads)]
        trial.set_user_attr("config", config)
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


def test_every_figure_is_titled_by_what_it_plots(tmp_path: Path) -> None:
    from search.report import build_figures

    study = _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}")
    for title, fig in build_figures(study):
        assert fig.layout.title.text.startswith(title.split(" (")[0].split(":")[0]), (title, fig.layout.title.text)
    assert "Intermediate Values Plot" not in write_report(study, tmp_path / "r.html").read_text()


def test_a_val_loss_signal_gets_its_own_panel_beside_the_macro_f1_by_epoch(tmp_path: Path) -> None:
    study = _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}", signal="val_loss")
    page = write_report(study, tmp_path / "report.html").read_text()
    assert f"<h2>{F1_BY_EPOCH}</h2>" in page and f"<h2>{LOSS_SIGNAL}</h2>" in page
    assert "negated validation loss" not in F1_BY_EPOCH and "trial 7 (complete)" in page
    assert page.count("Plotly.newPlot") == len(TITLES) + 1


def test_report_of_the_smoke_study(smoke_run: SmokeRun, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["--study", "smoke", "--storage", smoke_run.storage, "--out", str(out)]) == 0
    page = out.read_text()
    for title in (HISTORY, F1_BY_EPOCH, BY_CUTOFF, "Validation confusion matrix of the best trial"):
        assert f"<h2>{title}</h2>" in page
    best = smoke_run.study.best_trial.number
    assert f"<h2 id='errors'>Wrong validation photos: best trial #{best} (" in page
    assert page.count("<img src='data:image/jpeg;base64,") <= 6 * 4  # the default bound


def test_report_on_unknown_study_is_a_clear_error(smoke_run: SmokeRun, tmp_path: Path, capsys) -> None:
    assert main(["--name", "nope", "--storage", smoke_run.storage, "--out", str(tmp_path / "x.html")]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


def test_report_needs_a_study_file_or_a_stored_name(smoke_run: SmokeRun, tmp_path: Path, capsys) -> None:
    assert main(["--storage", smoke_run.storage, "--out", str(tmp_path / "x.html")]) == 2
    assert "--study FILE" in capsys.readouterr().err and not (tmp_path / "x.html").exists()
    assert main(["--name", "smoke", "--storage", smoke_run.storage, "--out", str(tmp_path / "x.html")]) == 0


def test_old_band_scores_count_the_six_old_classes_as_one() -> None:
    confusion = np.zeros((18, 18), dtype=int)
    confusion[2, 5] = 3  # old male predicted old female: still an old hit
    confusion[5, 4] = 1  # an old person predicted 30-59: a miss
    confusion[1, 8] = 2  # a 30-59 person predicted old: a false alarm
    confusion[0, 0] = 10
    f1, recall, precision = old_band_scores(confusion)
    assert (recall, precision) == (0.75, 0.6)
    assert f1 == 2 * 3 / (4 + 5)
    assert old_band_scores(None) is None and old_band_scores(np.zeros((18, 18))) == (0.0, 0.0, 0.0)


def test_the_cutoff_panel_shows_old_band_f1_and_a_head_panel_appears_when_heads_differ(tmp_path: Path) -> None:
    study = _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}", heads=("single", "ordinal"))
    page = write_report(study, tmp_path / "report.html").read_text()
    assert BY_CUTOFF in page and '"name":"old-band F1"' in page
    assert f"<h2>{BY_HEAD}</h2>" in page and page.count("Plotly.newPlot") == len(TITLES) + 1


def test_the_report_shows_the_wrong_photos_of_the_best_trial_and_the_bundle(
    tiny_study: TinyStudy, bundle_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny.html"
    common = ["--name", "tiny", "--storage", tiny_study.storage, "--workdir", str(tiny_study.workdir)]
    assert main([*common, "--bundle", str(bundle_dir), "--error-pairs", "2", "--per-pair", "3", "--out", str(out)]) == 0
    page = out.read_text()
    best = max(tiny_study.store.trial_numbers(), key=lambda n: optuna.load_study(
        study_name="tiny", storage=tiny_study.storage).trials[n].value)
    assert f"Wrong validation photos: best trial #{best} (" in page
    assert f"Wrong validation photos: exported ensemble {bundle_dir}" in page
    assert 2 <= page.count("<img src='data:image/jpeg;base64,") <= 2 * 2 * 3
    assert "&rarr; predicted" in page and "Grad-CAM of the predicted class" in page
    assert main([*common, "--bundle", str(bundle_dir), "--error-pairs", "0", "--out", str(out)]) == 0
    assert "data:image/jpeg" not in out.read_text()


def test_a_bundle_of_another_study_is_one_line_and_no_report(smoke_run: SmokeRun, bundle_dir: Path, tmp_path: Path,
                                                             capsys) -> None:
    out = tmp_path / "x.html"
    assert main(["--study", "smoke", "--storage", smoke_run.storage, "--workdir", str(smoke_run.workdir),
                 "--bundle", str(bundle_dir), "--out", str(out)]) == 2
    assert "exported from study 'tiny', not 'smoke'" in capsys.readouterr().err and not out.exists()


def test_the_bundle_in_exports_is_found_by_default(tiny_study: TinyStudy, bundle_dir: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    import shutil

    from search.report import default_bundle

    monkeypatch.chdir(tmp_path)
    shutil.copytree(bundle_dir, tmp_path / "exports" / "tiny")
    shutil.copytree(bundle_dir, tmp_path / "exports" / "other")  # a bundle of study tiny under another name
    assert default_bundle("tiny") == Path("exports/tiny") and default_bundle("other") is None
    assert default_bundle("absent") is None
    out = tmp_path / "tiny.html"
    assert main(["--name", "tiny", "--storage", tiny_study.storage, "--workdir", str(tiny_study.workdir),
                 "--error-pairs", "1", "--per-pair", "1", "--out", str(out)]) == 0
    assert "Wrong validation photos: exported ensemble exports/tiny" in out.read_text()


def test_report_out_replaces_an_earlier_report_and_nothing_else(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'fake.db'}"
    _recorded_study(url)
    args = ["--name", "fake", "--storage", url, "--workdir", str(tmp_path)]
    readme = tmp_path / "README.md"
    readme.write_text("# my notes\n")
    assert main([*args, "--out", str(readme)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (f"error: --out {readme} is not a report written by python -m search.report (its "
                    "contents are not this verb's), so nothing was deleted or overwritten. "
                    "Choose another --out.")
    assert readme.read_text() == "# my notes\n"
    page = tmp_path / "page.html"
    assert main([*args, "--out", str(page)]) == 0 and main([*args, "--out", str(page)]) == 0  # its own page
    assert main([*args, "--out", str(tmp_path)]) == 2
    assert "is a folder; name an HTML file" in capsys.readouterr().err


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
    import search.common.atomic
    from tests.support.diskfull import fill_disk

    study = _recorded_study(f"sqlite:///{tmp_path / 'fake.db'}")
    fill_disk(monkeypatch, search.common.atomic)
    out = tmp_path / "r.html"
    code = main(["--name", "fake", "--storage", f"sqlite:///{tmp_path / 'fake.db'}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "No space left on device" in err and "free some disk space" in err
    assert study.trials and not out.exists() and not list(tmp_path.glob(".r.html*")), "no partial file left"
