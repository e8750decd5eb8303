"""The refit phase of search.run: fold groups of the best trial in the time the search leaves,
resumed after a kill, skipped in one line when no group fits; and the whole command end to end."""

from __future__ import annotations

import datetime
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

import search.engine.options as options_module
import search.refitting.train as train_module
from search.refitting.train import Work
from search.ensembling.candidates import load_candidates
from search.ensembling.procedure import run_procedure
from search.engine.budget import TimeBudget, record_took_share, search_took_share
from search.engine.options import RunOptions, RunPlan, plan_run
from search.refitting.phase import GROUP_SLACK, choose_folds, refit_phase
from search.refitting.store import RefitStore
from search.run import main as run_main
from search.studyfile.parse import StudyFileError, load_study_spec

REFIT = "\n[refit]\nenabled = true\ntop = 1\nfolds = 2\n"


def _options(refit_study, tmp_path: Path, timeout_s: float | None = None, table: str = REFIT) -> RunPlan:
    toml = tmp_path / "phase.toml"
    toml.write_text((refit_study.workdir / "refit.toml").read_text() + table)
    return plan_run(RunOptions(
        study=str(toml),
        name=refit_study.name,
        storage=refit_study.storage,
        workdir=refit_study.workdir,
        device="cpu",
        timeout_s=timeout_s,
        started_at=time.time(),
        refit=True,
    ))


def _best(refit_study) -> int:
    study = optuna.load_study(study_name=refit_study.name, storage=refit_study.storage)
    return study.best_trial.number


def _counting(monkeypatch) -> list[str]:
    """Count the models trained through the phase (train_model calls)."""
    trained: list[str] = []
    real = train_module.train_model

    def train_model(*args, **kwargs):
        trained.append("model")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_model", train_model)
    return trained


def test_a_killed_refit_phase_resumes_with_only_the_missing_fold_models(
    refit_study, tmp_path: Path, monkeypatch, capsys
) -> None:
    opts = _options(refit_study, tmp_path)
    store = RefitStore(refit_study.store, _best(refit_study))
    real_save = RefitStore.save_model

    def save_then_die(self, folder, *args, **kwargs):  # killed right after the first fold model is kept
        real_save(self, folder, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(RefitStore, "save_model", save_then_die)
    assert refit_phase(opts) == 130
    assert store.has_model(store.fold_dir(2, 0)) and not store.has_model(store.fold_dir(2, 1))
    first = (store.fold_dir(2, 0) / "weights.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(RefitStore, "save_model", real_save)
    trained = _counting(monkeypatch)
    assert refit_phase(opts) == 0
    assert trained == ["model"]  # fold 1 only
    assert (store.fold_dir(2, 0) / "weights.safetensors").stat().st_mtime_ns == first
    assert store.fold_groups() == [2]
    out = capsys.readouterr().out
    assert "refit: 1 trial(s) on 2 person folds" in out and "1 model(s) to train" in out
    assert "Next: python -m search.export" in out
    names = [c.name for c in load_candidates(refit_study.name, refit_study.storage).candidates]
    assert f"{refit_study.name}#{store.number}/folds-2" in names


def test_no_fold_group_in_the_time_left_says_so_and_ships_the_search_s_best(
    refit_study, tmp_path: Path, monkeypatch, capsys
) -> None:
    opts = _options(refit_study, tmp_path, timeout_s=1.0)  # a group needs ~3 s at the trials' recorded pace
    trained = _counting(monkeypatch)
    assert refit_phase(opts) == 0
    out = capsys.readouterr().out.strip()
    assert len(out.splitlines()) == 1
    assert out.startswith("refit: no fold group fits in the ") and "the export ships the search's best" in out
    assert f"python -m search.refit --name {refit_study.name} " in out and out.endswith("--folds 2")
    assert trained == [] and not RefitStore(refit_study.store, _best(refit_study)).root.exists()
    outcome = run_procedure(load_candidates(refit_study.name, refit_study.storage))
    assert not any(c.is_fold_group for c in outcome.candidates) and outcome.shipped


def test_when_no_fold_group_fits_the_time_left_goes_back_to_the_search(
    refit_study, tmp_path: Path, monkeypatch, capsys
) -> None:
    opts = _options(refit_study, tmp_path, timeout_s=1.0)
    trained = _counting(monkeypatch)
    searched: list[bool] = []
    assert refit_phase(opts, search_on=lambda: searched.append(True) or 3) == 3  # its exit code is the phase's
    out = capsys.readouterr().out.strip()
    assert "the search goes on in that time instead, and the export ships the search's best" in out
    assert searched == [True] and trained == []


def test_when_the_search_took_the_share_the_phase_says_why_and_trains_nothing(
    refit_study, tmp_path: Path, monkeypatch, capsys
) -> None:
    opts = _options(refit_study, tmp_path, timeout_s=3600.0)  # a group would fit: the run's own record rules
    study = optuna.load_study(study_name=refit_study.name, storage=refit_study.storage)
    why = "at 80 s an epoch, a 2-fold group of 5-epoch models needs about 8 min 20 s, more than ..."
    record_took_share(study, TimeBudget(3600.0, opts.budget.started_at - 1), why)  # an earlier run's: no effect
    assert search_took_share(study, opts.budget) is None
    record_took_share(study, opts.budget, why)
    trained = _counting(monkeypatch)
    searched: list[bool] = []
    assert refit_phase(opts, search_on=lambda: searched.append(True) or 0) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"refit: none in this run: {why}; the export ships the search's best.")
    assert out.endswith(f"--trials {_best(refit_study)} --folds 2")
    assert trained == [] and searched == []


def _a_searched_trial(refit_study, seconds_per_epoch: float = 10.0) -> None:
    """A finished 2-epoch trial of this run's search (the template's trials carry no per-epoch reports,
    so the search's pace would be unknown), weak enough not to be refitted."""
    study = optuna.load_study(study_name=refit_study.name, storage=refit_study.storage)
    end = datetime.datetime.now()
    study.add_trial(optuna.trial.FrozenTrial(
        number=0, trial_id=0, state=optuna.trial.TrialState.COMPLETE, value=0.0, values=None,
        datetime_start=end - datetime.timedelta(seconds=2 * seconds_per_epoch), datetime_complete=end,
        params={}, distributions={}, user_attrs={}, system_attrs={}, intermediate_values={1: 0.0, 2: 0.0},
    ))


def test_time_left_after_the_fold_groups_goes_back_to_the_search(refit_study, tmp_path: Path, capsys) -> None:
    opts = _options(refit_study, tmp_path, timeout_s=3600.0)
    _a_searched_trial(refit_study)
    searched: list[bool] = []
    assert refit_phase(opts, search_on=lambda: searched.append(True) or 0) == 0
    out = capsys.readouterr().out
    assert "refit: 1 trial(s) on 2 person folds" in out and "of the time budget left; the search goes on in it" in out
    assert searched == [True]


def test_no_search_after_the_fold_groups_when_no_trial_fits_the_time_left(
    refit_study, tmp_path: Path, capsys
) -> None:
    opts = _options(refit_study, tmp_path, timeout_s=3600.0)
    _a_searched_trial(refit_study)
    calls = iter(range(1_000))
    # the phase plans at the start of the budget; from the next reading of the clock on (after the
    # groups), one second of the hour is left: less than a trial's epochs at the recorded pace
    clock = lambda: opts.budget.started_at + (0.0 if next(calls) < 1 else 3599.0)  # noqa: E731
    searched: list[bool] = []
    assert refit_phase(opts, clock=clock, search_on=lambda: searched.append(True) or 0) == 0
    assert "refit: 1 trial(s) on 2 person folds" in capsys.readouterr().out
    assert searched == []


@pytest.mark.parametrize("table", ["\n[refit]\nenabled = false\n", ""])
def test_off_in_the_study_file_or_by_flag_does_nothing(refit_study, tmp_path: Path, capsys, table: str) -> None:
    assert refit_phase(_options(refit_study, tmp_path, table=table)) == 0
    opts = _options(refit_study, tmp_path)
    assert refit_phase(plan_run(replace(opts.options, refit=False))) == 0  # --no-refit
    assert capsys.readouterr().out == ""
    assert not RefitStore(refit_study.store, _best(refit_study)).root.exists()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[refit]\ntop = 0\n", "refit.top must be at least 1"),
        ("[refit]\nfolds = 1\n", "refit.folds must be 0"),
        ("[refit]\ntime_share = 1.0\n", "refit.time_share must be a share"),
        ("[refit]\nenabled = 'yes'\n", "refit.enabled must be true or false"),
        ("[refit]\nshare = 0.5\n", "unknown key 'refit.share'"),
        ("[refit]\nenabled = true\n", "names no folds"),
        ("[profiles.cpu.refit]\ntop = -1\n", "profiles.cpu.refit.top must be at least 1"),
    ],
)
def test_the_refit_table_is_checked_at_load(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f"[params]\nlr = [0.1]\n{table}")
    with pytest.raises(StudyFileError, match=message):
        load_study_spec(path, "cpu")


def test_age_cutoff_refits_in_both_profiles() -> None:
    cpu, gpu = load_study_spec("age_cutoff", "cpu"), load_study_spec("age_cutoff", "gpu")
    assert cpu.refit.enabled and (cpu.refit.top, cpu.refit_folds, cpu.refit.time_share) == (1, 3, 0.6)
    assert gpu.refit.enabled and (gpu.refit.top, gpu.refit_folds, gpu.refit.time_share) == (2, 5, 0.4)
    assert cpu.refit_fold_choices == (5, 4, 3) and gpu.refit_fold_choices == (5,)


def test_the_most_folds_that_fit_with_room_to_spare_or_the_group_already_begun() -> None:
    fresh = {4: Work(4, 8, 40.0), 3: Work(3, 6, 30.0), 2: Work(2, 4, 20.0)}  # most folds first
    assert choose_folds(fresh, 100.0, 1) == (4, "the most whose group fits the time left")
    assert choose_folds(fresh, None, 1) == (4, "no time budget")
    tight = 40.0 / (1.0 - GROUP_SLACK)
    assert choose_folds(fresh, tight, 1)[0] == 4 and choose_folds(fresh, tight - 1.0, 1)[0] == 3
    fewest_tight = 20.0 / (1.0 - GROUP_SLACK)
    assert choose_folds(fresh, fewest_tight, 1) == (2, "the most whose group fits the time left")
    assert choose_folds(fresh, fewest_tight - 1.0, 1) == (2, ""), "the fewest folds too need room to spare"
    assert choose_folds(fresh, 19.0, 1) == (2, ""), "nothing fits: the fewest, and the phase says so"
    assert choose_folds(fresh, 26.0, 1)[0] == 2 and choose_folds(fresh, 26.0, 2)[0] == 4, "two processes: two rounds"
    begun = {**fresh, 3: Work(1, 2, 10.0)}  # an earlier run left one of three models to train
    assert choose_folds(begun, 100.0, 1) == (3, "the group an earlier run began")
    assert choose_folds(begun, 9.0, 1) == (2, ""), "a begun group that does not fit is not chosen"


def test_max_folds_below_the_refit_s_folds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[params]\nlr = [0.1]\n[refit]\nenabled = true\nfolds = 3\nmax_folds = 2\n")
    with pytest.raises(StudyFileError, match="refit.max_folds must be 0 .* at least the refit's folds .3."):
        load_study_spec(path, "cpu")


def test_the_phase_trains_the_most_folds_that_fit(refit_study, tmp_path: Path, capsys) -> None:
    opts = _options(refit_study, tmp_path, timeout_s=3600.0, table=REFIT + "max_folds = 3\n")
    assert refit_phase(opts) == 0
    out = capsys.readouterr().out
    assert "refit: 3 person folds of 2-3 ([refit] folds to max_folds): the most whose group fits" in out
    assert RefitStore(refit_study.store, _best(refit_study)).fold_groups() == [3]


@pytest.mark.slow
def test_search_run_searches_then_refits(tiny_bench: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    text = (Path(__file__).resolve().parents[3] / "studies" / "smoke.toml").read_text()
    toml = tmp_path / "smokefolds.toml"
    toml.write_text(text.replace("epochs = 3", "epochs = 1") + REFIT)
    workdir = tmp_path / "runs"
    args = ["--study", str(toml), "--data", str(tiny_bench), "--workdir", str(workdir), "--device", "cpu"]
    reads: list[str] = []
    real_load = options_module.load_study_spec

    def load_study_spec(path, *rest, **named):
        reads.append(str(path))
        return real_load(path, *rest, **named)

    monkeypatch.setattr(options_module, "load_study_spec", load_study_spec)
    assert run_main([*args, "--n-trials", "2"]) == 0
    assert reads == [str(toml)], "the study file is read once, into the run's plan, for the search and the refit"
    out = capsys.readouterr().out
    assert "refit: 1 trial(s) on 2 person folds" in out and "Next: python -m search.export" in out
    study = optuna.load_study(study_name="smokefolds", storage=f"sqlite:///{workdir / 'studies.db'}")
    store = RefitStore(train_module.TrialStore(workdir, "smokefolds"), study.best_trial.number)
    assert store.fold_groups() == [2]


def test_with_two_processes_the_phase_trains_the_missing_fold_models_side_by_side_and_resumes(
    refit_study, tmp_path: Path, monkeypatch, capsys
) -> None:
    table = REFIT.replace("folds = 2", "folds = 3")
    opts = _options(refit_study, tmp_path, table=table)
    store = RefitStore(refit_study.store, _best(refit_study))
    real_save = RefitStore.save_model

    def save_then_die(self, folder, *args, **kwargs):  # a one-process phase killed after its first model
        real_save(self, folder, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(RefitStore, "save_model", save_then_die)
    assert refit_phase(opts) == 130
    monkeypatch.setattr(RefitStore, "save_model", real_save)
    first = (store.fold_dir(3, 0) / "weights.safetensors").stat().st_mtime_ns
    capsys.readouterr()

    assert refit_phase(replace(opts, workers=2)) == 0  # folds 1 and 2, one in each spawned process
    out = capsys.readouterr().out
    assert "2 model(s) to train in 2 processes" in out
    assert all(store.has_model(store.fold_dir(3, i)) for i in range(3))
    assert (store.fold_dir(3, 0) / "weights.safetensors").stat().st_mtime_ns == first, "kept, not retrained"
    [row] = [line for line in out.splitlines() if line.startswith(f"| {store.number} | 3 folds (3/3 done) |")]
    assert row.split("|")[4].strip() == "2", "two models trained now"
    names = [c.name for c in load_candidates(refit_study.name, refit_study.storage).candidates]
    assert f"{refit_study.name}#{store.number}/folds-3" in names


def test_fold_models_side_by_side_take_rounds_of_the_processes() -> None:
    from search.refitting.phase import side_by_side

    assert side_by_side(300.0, 3, 1) == 300.0
    assert side_by_side(300.0, 3, 2) == 200.0  # two rounds of a 100 s model
    assert side_by_side(300.0, 3, 3) == side_by_side(300.0, 3, 8) == 100.0
    assert side_by_side(0.0, 0, 2) == 0.0
