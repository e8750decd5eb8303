"""search.run's guards: budgets, crashed trials, giving up, concurrent creation, eval, threads,
the sampler seed on resume and warnings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from search.engine.prepare import make_sampler, open_study
from search.storage.reaper import reap_orphans
from search.run import build_parser, main, options_from_args
from search.storage.backends import open_storage
from search.studyfile.parse import load_study_spec
from search.common.threads import default_threads, intra_op_threads, set_torch_threads
from tests.search.verbs.test_run import _smoke_variant

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


# --- budgets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n-trials", "0"], "--n-trials must be a whole number >= 1 but got 0"),
        (["--n-trials", "-3"], "--n-trials must be a whole number >= 1 but got -3"),
        (["--timeout", "0"], "--timeout must be a number of seconds > 0 but got 0.0"),
        (["--timeout", "-1"], "--timeout must be a number of seconds > 0 but got -1.0"),
        (["--threads", "0"], "--threads must be a whole number >= 1 but got 0"),
    ],
)
def test_an_empty_budget_is_refused(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--study", "smoke", "--device", "cpu", *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_study_file_with_a_wrong_type_is_one_line_before_data_is_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    toml = _smoke_variant(tmp_path / "typo.toml", ("val_fraction = 0.25", 'val_fraction = "0.25"'))
    code = main(["--study", str(toml), "--data", str(tmp_path / "no-data"), "--workdir", str(tmp_path / "runs"),
                 "--device", "cpu"])
    assert code == 2
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "typo.toml: split.val_fraction must be a number" in error.getMessage() and not error.exc_info
    assert not (tmp_path / "runs").exists()


# --- a crashed trial does not block a resume -----------------------------------------------------

# a worker that tags its trial as search.engine.runstudy.worker_objective does, then is killed outright
_CRASH = textwrap.dedent("""
    import os, signal, socket, sys
    import optuna
    from search.storage.backends import open_storage
    from search.storage.trial_attrs import TrialAttrs
    study = optuna.create_study(study_name="s", storage=open_storage(sys.argv[1]), load_if_exists=True)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    TrialAttrs.set(trial, worker=f"{socket.gethostname()}:{os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_killed_workers_trial_is_failed_and_retried_when_the_study_restarts(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal://{tmp_path / 's.journal'}"
    done = subprocess.run([sys.executable, "-c", _CRASH, url], cwd=REPO, env=ENV,
                          capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    assert reap_orphans(study) == [0], "the dead worker's trial does not wait for a heartbeat grace period"
    killed, retry = study.trials
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["failure_reason"]
    assert retry.state == TrialState.WAITING and retry.params == killed.params


def test_a_study_whose_trials_keep_failing_gives_up_and_exits_non_zero(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from search.engine.objective import TrialFailed
    from search.engine.trialbudget import StopAtBudget

    study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    budget = StopAtBudget(n_trials=1)

    def objective(trial: optuna.Trial) -> float:
        raise TrialFailed("diverged")

    study.optimize(objective, n_trials=50, callbacks=[budget], catch=(TrialFailed,))
    assert len(study.trials) == 11 and budget.gave_up, "stopped after more than max(10, 2 n) failures"
    assert "stopping: 11 trials of this worker failed" in caplog.text


# --- two runs create the same new SQLite file ----------------------------------------------------

_CREATE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from search.storage.backends import open_storage
    folder = Path(sys.argv[1])
    (folder / f"ready-{os.getpid()}").touch()
    while not (folder / "go").exists():  # every process has imported optuna: open the files at once
        time.sleep(0.01)
    for i in range(int(sys.argv[2])):
        open_storage(f"sqlite:///{folder}/s{i}.db")
""")


def test_two_runs_creating_one_sqlite_file_at_once_both_succeed(tmp_path: Path) -> None:
    import time

    procs = [subprocess.Popen([sys.executable, "-c", _CREATE, str(tmp_path), "6"], cwd=REPO, env=ENV,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    (tmp_path / "go").touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(errors)[-3000:]
    assert not any("alembic_version" in e for e in errors)


# --- eval/ is checked up front -------------------------------------------------------------------


def test_an_eval_row_without_its_image_stops_the_run_before_the_study(tiny_bench: Path, tmp_path: Path) -> None:
    import shutil

    from search.data import DataError

    data = tmp_path / "data"
    shutil.copytree(tiny_bench, data)
    (first, *_) = sorted(p for p in (data / "eval" / "images").glob("*.jpg") if not p.name.startswith("."))
    first.unlink()
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    with pytest.raises(DataError, match=f"info.csv line .*ImageID '{first.name}' has no image"):
        open_study(load_study_spec("smoke"), url, tmp_path / "runs", data)
    assert not optuna.get_all_study_names(url), "found before the study is created"


# --- threads -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cores", "loaders", "threads"), [(2, 1, 1), (1, 0, 1), (16, 4, 12), (4, 0, 4), (2, 4, 1)])
def test_torch_gets_the_cores_the_loader_leaves(cores: int, loaders: int, threads: int) -> None:
    assert intra_op_threads(cores, loaders) == threads


def test_the_main_command_sets_the_rule_or_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3, "an explicit OMP_NUM_THREADS is the user's choice"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("MASK_AUTOML_LOADER_WORKERS", "1")
    cores = len(os.sched_getaffinity(0))
    assert default_threads() == max(1, cores - 1)
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(None) == torch.get_num_threads() == max(1, cores - 1)
        assert set_torch_threads(3) == torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert options_from_args(build_parser().parse_args(["--study", "smoke", "--threads", "2"])).threads == 2


# --- a resumed study samples afresh, without warnings ---------------------------------------------


def test_a_resumed_study_does_not_draw_its_first_parameters_again(tiny_bench: Path, tmp_path: Path) -> None:
    spec = load_study_spec("smoke")
    url = f"sqlite:///{tmp_path / 's.db'}"
    drawn = []
    for _ in range(2):
        study, _ = open_study(spec, url, tmp_path / "runs", tiny_bench)
        trial = study.ask({"x": FloatDistribution(0.0, 1.0)})
        study.tell(trial, 0.5)
        drawn.append(trial.params["x"])
    assert drawn[0] != drawn[1]


def test_optunas_experimental_warnings_are_silenced_where_they_arise(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
        make_sampler(load_study_spec("smoke"))
    assert storage is not None
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)], caught
