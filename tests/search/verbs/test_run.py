from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from search.engine.options import RunOptions
from search.run import build_parser
from search.engine.runstudy import run_study
from search.storage.trialstore import TrialStore
from tests.search.conftest import SmokeRun

REPO = Path(__file__).resolve().parents[3]


def _trials(study: optuna.Study, state: TrialState) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(state,))


def _smoke_variant(path: Path, *replacements: tuple[str, str]) -> Path:
    """The smoke study file with some text replaced, written to ``path``."""
    text = (REPO / "studies" / "smoke.toml").read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


def test_smoke_study_reaches_its_budget_and_prunes(smoke_run: SmokeRun) -> None:
    study = smoke_run.study
    complete, pruned = _trials(study, TrialState.COMPLETE), _trials(study, TrialState.PRUNED)
    assert len(complete) + len(pruned) == 8
    assert pruned, "successive halving should stop some weak trials"
    epochs = lambda ts: [len(t.intermediate_values) for t in ts]
    assert max(epochs(pruned)) < max(epochs(complete))
    assert np.mean(epochs(pruned)) < np.mean(epochs(complete))
    assert not _trials(study, TrialState.RUNNING)


def test_every_trial_records_what_the_dashboard_shows(smoke_run: SmokeRun) -> None:
    study = smoke_run.study
    for trial in _trials(study, TrialState.COMPLETE) + _trials(study, TrialState.PRUNED):
        attrs = trial.user_attrs
        assert attrs["config"]["backbone"] in {"test_resnet", "test_efficientnet"}
        assert attrs["config"]["age_cutoff"] == trial.params["age_cutoff"]
        assert len(attrs["per_class_f1"]) == 18
        assert attrs["device"] == "cpu" and attrs["seconds_per_epoch"] > 0 and attrs["train_images_per_s"] > 0
        assert trial.intermediate_values and all(0 <= v <= 1 for v in trial.intermediate_values.values())
        # the pruner is shown macro-F1 unless the study file says otherwise
        assert attrs["pruning_signal"] == "macro_f1"
        assert [trial.intermediate_values[h["epoch"]] for h in attrs["history"]] == [h["val_macro_f1"] for h in attrs["history"]]
    for trial in _trials(study, TrialState.COMPLETE):
        assert trial.user_attrs["best_epoch"] >= 1
        names = {m.filename for m in get_all_artifact_meta(trial, storage=study._storage)}
        assert names == {"val_probs.npy", "confusion_matrix.png"}
    assert "split" in study.user_attrs and study.user_attrs["data_fingerprint"]


def test_checkpoints_kept_only_for_the_top_trials(smoke_run: SmokeRun) -> None:
    store = TrialStore(smoke_run.workdir, "smoke")
    complete = sorted(_trials(smoke_run.study, TrialState.COMPLETE), key=lambda t: t.value, reverse=True)
    kept = store.trial_numbers()
    assert set(kept) == {t.number for t in complete[:4]}
    validation = store.load_validation()
    for number in kept:
        probs = store.load_probs(number)
        assert probs.shape == (len(validation.rows), 18)
        assert json.loads((store.trial_dir(number) / "config.json").read_text())["backbone"]


def test_resume_continues_the_same_study_with_the_same_split(smoke_run: SmokeRun, tmp_path: Path) -> None:
    split_before = smoke_run.study.user_attrs["split"]
    # A second run with the same budget does nothing; a bigger budget adds exactly the difference.
    again = run_study(smoke_run.options())
    assert len(again.trials) == len(smoke_run.study.trials)
    more = run_study(smoke_run.options(n_trials=9))
    finished = [t for t in more.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 9
    assert more.user_attrs["split"] == split_before


def test_resuming_on_other_data_is_refused(smoke_run: SmokeRun, tmp_path: Path) -> None:
    from search.engine.prepare import StudyMismatchError
    from search.benches.synth import generate

    other = generate(tmp_path / "other", people=72, size=(48, 64), seed=1, progress=False)
    with pytest.raises(StudyMismatchError, match="--name"):
        run_study(smoke_run.options(data=other, n_trials=20))


def test_resuming_with_another_pruning_signal_is_refused(smoke_run: SmokeRun, tmp_path: Path) -> None:
    from search.engine.prepare import StudyMismatchError

    assert smoke_run.study.user_attrs["pruning_signal"] == "macro_f1"
    (tmp_path / "loss").mkdir()
    # the same study name, pruned on another scale
    toml = _smoke_variant(tmp_path / "loss" / "smoke.toml",
                          ('name = "successive_halving"', 'name = "successive_halving"\nsignal = "val_loss"'))
    before = len(smoke_run.study.trials)
    with pytest.raises(StudyMismatchError, match="reported macro_f1 to its pruner.*signal = 'macro_f1'.*--name"):
        run_study(smoke_run.options(study=str(toml), n_trials=20))
    assert len(optuna.load_study(study_name="smoke", storage=smoke_run.storage).trials) == before


def test_a_diverging_trial_fails_and_the_study_goes_on(tiny_bench: Path, tmp_path: Path) -> None:
    toml = _smoke_variant(tmp_path / "diverge.toml", ("lr = { low = 3e-3, high = 3e-2, log = true }", "lr = [1e9, 1e-2]"),
                          ("n_trials = 8", "n_trials = 3"))
    opts = RunOptions(study=str(toml), data=tiny_bench, workdir=tmp_path / "runs", device="cpu", seed=3)
    study = run_study(opts)
    failed = _trials(study, TrialState.FAIL)
    assert failed, "an lr of 1e9 must diverge"
    assert all("nan" in str(t.user_attrs.get("failure_reason", "")).lower() for t in failed)
    assert len(_trials(study, TrialState.COMPLETE)) + len(_trials(study, TrialState.PRUNED)) == 3


def test_a_val_loss_signal_reaches_the_pruner_while_the_dashboard_shows_macro_f1(loss_run: SmokeRun) -> None:
    trials = _trials(loss_run.study, TrialState.COMPLETE) + _trials(loss_run.study, TrialState.PRUNED)
    assert len(trials) == 6 and _trials(loss_run.study, TrialState.PRUNED)
    for trial in trials:
        history = trial.user_attrs["history"]
        assert trial.user_attrs["pruning_signal"] == "val_loss"
        assert trial.user_attrs["pruning_curve"] == [-h["val_loss"] for h in history]
        assert [trial.intermediate_values[h["epoch"]] for h in history] == [h["val_macro_f1"] for h in history]
    for trial in trials:  # complete: the best epoch's macro-F1; pruned: Optuna's last intermediate value
        assert 0.0 <= trial.value <= 1.0
    # successive halving compared the losses: its rung records hold the negated loss, not F1
    rung = [t.system_attrs["completed_rung_0"] for t in trials if "completed_rung_0" in t.system_attrs]
    assert rung and all(v < 0 for v in rung)


def test_augment_on_device_reaches_every_augmented_trial(tiny_bench: Path, tmp_path: Path) -> None:
    toml = _smoke_variant(tmp_path / "strong.toml", ('augment = ["none", "flip"]', 'augment = ["strong", "bccs"]'),
                          ("n_trials = 8", "n_trials = 2"), ("epochs = 3", "epochs = 1"))
    opts = RunOptions(study=str(toml), data=tiny_bench, workdir=tmp_path / "runs", device="cpu", augment_on="device")
    study = run_study(opts)
    finished = _trials(study, TrialState.COMPLETE)
    assert len(finished) == 2
    assert [t.user_attrs["augment_on"] for t in finished] == ["device", "device"]
    assert build_parser().parse_args(["--study", "smoke", "--augment-on", "loader"]).augment_on == "loader"


def test_a_bad_augment_place_in_the_environment_is_refused_before_any_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASK_AUTOML_AUGMENT_ON", "gpu")
    with pytest.raises(ValueError, match="MASK_AUTOML_AUGMENT_ON must be one of auto, loader, device but got 'gpu'"):
        RunOptions(study="smoke", workdir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_ctrl_c_marks_the_trial_failed_and_the_study_resumes(tiny_bench: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    # Trials of 12 epochs, not 3: the poll below must see one running even on a loaded machine
    study_file = tmp_path / "smoke.toml"
    study_file.write_text((REPO / "studies" / "smoke.toml").read_text().replace("epochs = 3", "epochs = 12"))
    cmd = [sys.executable, "-m", "search.run", "--study", str(study_file), "--data", str(tiny_bench),
           "--workdir", str(tmp_path / "runs"), "--storage", storage, "--device", "cpu", "--n-trials", "3"]
    # a clean environment: nothing an earlier test of the session left in os.environ reaches the run
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(PYTHONPATH=str(REPO), MASK_AUTOML_WORKERS="1", OMP_NUM_THREADS="1")

    def default_sigint() -> None:  # whatever the test process inherited or set, the run gets a plain Ctrl-C
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=default_sigint)
    lines: list[str] = []

    def read() -> None:  # read as it comes, so the pipe never fills and the run never waits on it
        lines.extend(proc.stdout)  # type: ignore[arg-type]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name="smoke", storage=storage)
        except KeyError:
            continue
        if _trials(study, TrialState.RUNNING):
            time.sleep(0.5)  # into its first epoch
            break
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 130, out
    assert "resume" in out
    study = optuna.load_study(study_name="smoke", storage=storage)
    assert not _trials(study, TrialState.RUNNING)
    assert _trials(study, TrialState.FAIL)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    study = optuna.load_study(study_name="smoke", storage=storage)
    assert len(_trials(study, TrialState.COMPLETE)) + len(_trials(study, TrialState.PRUNED)) == 3
    assert "optuna-dashboard" in done.stdout and "search.export" in done.stdout


def test_bad_data_is_one_clear_line_and_writes_no_study(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from search.run import main

    (tmp_path / "data" / "train" / "images").mkdir(parents=True)
    storage = tmp_path / "runs" / "studies.db"
    code = main(["--study", "smoke", "--data", str(tmp_path / "data"), "--workdir", str(tmp_path / "runs"),
                 "--device", "cpu"])
    assert code == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "train.csv" in errors[0]
    assert not storage.exists() or not optuna.get_all_study_names(f"sqlite:///{storage}")


def test_a_malformed_study_file_is_one_clear_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from search.run import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[study]\nn_trial = 3\n")
    assert main(["--study", str(bad), "--workdir", str(tmp_path / "runs"), "--device", "cpu"]) == 2
    assert any("n_trial" in r.getMessage() and "bad.toml" in r.getMessage() for r in caplog.records)


def test_known_good_trials_run_first_once_and_only_on_their_profile(tiny_bench: Path, tmp_path: Path) -> None:
    known = {"backbone": "test_efficientnet", "age_cutoff": 58, "focal_gamma": 0.5, "lr": 0.01,
             "unfrozen_depth": "all", "augment": "flip"}
    table = "".join(f"{k} = {json.dumps(v)}\n" for k, v in known.items())
    gpu_only = table.replace("age_cutoff = 58", "age_cutoff = 60").replace('"flip"', '"none"')
    toml = _smoke_variant(tmp_path / "known.toml", ("n_trials = 8", "n_trials = 2"), ("epochs = 3", "epochs = 1"))
    toml.write_text(toml.read_text() + f"\n[[profiles.cpu.enqueue]]\n{table}\n[[profiles.gpu.enqueue]]\n{gpu_only}")
    opts = RunOptions(study=str(toml), data=tiny_bench, workdir=tmp_path / "runs", device="cpu", seed=1)
    study = run_study(opts)
    first = study.trials[0]
    assert first.user_attrs["enqueued_from"] == str(toml) and study.user_attrs["enqueued"] == 1
    config = first.user_attrs["config"]
    assert all(config[k] == v for k, v in known.items() if k != "unfrozen_depth")
    assert config["unfrozen_depth"] == 6  # "all": every stage of test_efficientnet
    resumed = run_study(RunOptions(**{**opts.__dict__, "n_trials": 3}))
    assert len(resumed.trials) == 3
    assert sum("enqueued_from" in t.user_attrs for t in resumed.trials) == 1  # not enqueued again on resume
    assert not any(t.params.get("age_cutoff") == 60 and t.params.get("augment") == "none" and
                   t.params.get("lr") == 0.01 for t in resumed.trials)  # the gpu profile's trial never ran


def test_the_ordinal_age_head_trains_in_a_study_and_ships_in_a_bundle(tiny_bench: Path, tmp_path: Path) -> None:
    from search.deploy import Bundle
    from search.export import main as export_main

    toml = _smoke_variant(tmp_path / "ordinal.toml", ('crop = "face"', 'crop = "face"\nhead = "ordinal"'),
                          ('augment = ["none", "flip"]', 'augment = ["none", "flip"]\nage_loss_weight = { low = 0.5, high = 2.0 }'),
                          ("n_trials = 8", "n_trials = 2"), ("epochs = 3", "epochs = 1"))
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    study = run_study(RunOptions(study=str(toml), data=tiny_bench, workdir=tmp_path / "runs", storage=storage,
                                 device="cpu"))
    finished = _trials(study, TrialState.COMPLETE)
    assert len(finished) == 2
    for trial in finished:
        assert trial.user_attrs["config"]["head"] == "ordinal" and "age_loss_weight" in trial.params
    out = tmp_path / "bundle"
    assert export_main(["--name", study.study_name, "--storage", storage, "--out", str(out), "--max-members", "2"]) == 0
    bundle = Bundle.load(out)
    assert {m.config["head"] for m in bundle.members} == {"ordinal"}
    images = np.random.default_rng(0).integers(0, 256, (5, bundle.height, bundle.width, 3), dtype=np.uint8)
    by_torch, by_onnx = bundle.predict_proba(images), bundle.predict_proba(images, backend="onnx")
    np.testing.assert_allclose(by_torch, by_onnx, atol=1e-4)
    np.testing.assert_allclose(by_torch.sum(1), 1.0, atol=1e-5)
