"""python -m search.clean: what a study no longer needs is listed, and removed only with --yes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.artifacts import upload_artifact

from search.storage.backends import artifact_store, open_storage
from search.storage.trialstore import TrialStore

CONFIG = {"height": 32, "width": 24, "crop": "face"}


def _study(workdir: Path, scores: list[float]) -> tuple[str, optuna.Study]:
    """A study with one complete trial per score, each with a trial folder and an artifact."""
    url = f"sqlite:///{workdir / 'studies.db'}"
    study = optuna.create_study(study_name="s", storage=open_storage(url), direction="maximize")
    store = TrialStore(workdir, "s")
    for score in scores:
        trial = study.ask()
        trial.set_user_attr("config", CONFIG)
        folder = store.trial_dir(trial.number)
        folder.mkdir(parents=True)
        np.save(folder / "val_probs.npy", np.zeros((10, 18), np.float32))
        upload_artifact(artifact_store=artifact_store(workdir), file_path=str(folder / "val_probs.npy"),
                        study_or_trial=trial)
        study.tell(trial, score)
    return url, study


def _cache(workdir: Path, height: int, width: int, crop: str) -> Path:
    cache = workdir / "cache"
    cache.mkdir(exist_ok=True)
    base = cache / f"images-{crop}-{height}x{width}-n2-abc"
    np.save(base.with_suffix(".npy"), np.zeros((2, height, width, 3), np.uint8))
    base.with_suffix(".json").write_text(json.dumps({"height": height, "width": width, "crop": crop}))
    return base.with_suffix(".npy")


def test_clean_lists_then_removes_what_the_study_does_not_need(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from search.clean import main

    url, study = _study(tmp_path, [0.9, 0.5, 0.7])
    used, unused = _cache(tmp_path, 32, 24, "face"), _cache(tmp_path, 64, 48, "full")
    store = TrialStore(tmp_path, "s")
    args = ["--name", "s", "--storage", url, "--workdir", str(tmp_path), "--keep-top", "2"]

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and str(store.trial_dir(1)) in out and str(unused) in out and "dry run" in out
    assert store.trial_numbers() == [0, 1, 2] and unused.exists(), "a dry run deletes nothing"

    assert main([*args, "--yes"]) == 0
    out = capsys.readouterr().out
    assert store.trial_numbers() == [0, 2], "the two best trials stay"
    assert used.exists() and not unused.exists() and not unused.with_suffix(".json").exists()
    artifacts = {p.name for p in (tmp_path / "artifacts").iterdir()}
    kept = {optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)[0].artifact_id
            for t in study.trials if t.number != 1}
    assert artifacts == kept, "only the artifacts of the kept trials remain"
    assert "freed" in out and "bytes" in out
    freed = int(out.split("freed ")[1].split(" bytes")[0].replace(",", ""))
    assert freed > 2 * 64 * 48 * 3


def test_clean_names_a_missing_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from search.clean import main

    url, _ = _study(tmp_path, [0.5])
    assert main(["--name", "nope", "--storage", url, "--workdir", str(tmp_path)]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


def test_clean_reads_the_stored_study_of_a_study_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from search.clean import main

    url, _ = _study(tmp_path, [0.9, 0.5, 0.7, 0.6, 0.8, 0.4])
    toml = tmp_path / "s.toml"  # the stored name defaults to the file's name, s
    toml.write_text((Path(__file__).resolve().parents[3] / "studies" / "smoke.toml").read_text())
    assert main(["--study", str(toml), "--storage", url, "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    store = TrialStore(tmp_path, "s")
    # the study file's keep_top (4) decides: the two worst trials would go
    assert [n for n in range(6) if str(store.trial_dir(n)) in out] == [1, 5]
    assert main(["--storage", url, "--workdir", str(tmp_path)]) == 2
    assert "--name NAME" in capsys.readouterr().err


def _killed_build(target: Path) -> Path:
    """What ``kill -9`` during an export, refit or synth leaves: its temporary folder beside
    ``target``, named by search.common.atomic.temp_name, with a copy of the weights in it."""
    import os
    import signal
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    code = ("import os, signal, sys\nfrom pathlib import Path\nfrom search.common.atomic import temp_name\n"
            "target = Path(sys.argv[1])\ntarget.parent.mkdir(parents=True, exist_ok=True)\n"
            "tmp = temp_name(target)\ntmp.mkdir()\n(tmp / 'weights.safetensors').write_bytes(b'w' * 100)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run([sys.executable, "-c", code, str(target)], env=env)
    assert done.returncode == -signal.SIGKILL
    (left,) = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.tmp-")]
    return left


def test_clean_lists_and_removes_the_folders_of_killed_builds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.clean import main

    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "runs"
    url, _ = _study(workdir, [0.5])
    refit = _killed_build(TrialStore(workdir, "s").root / "refit_00000" / "folds-5" / "fold_1")
    export = _killed_build(tmp_path / "exports" / "s")
    synth = _killed_build(tmp_path / "data" / "synthetic")
    args = ["--name", "s", "--storage", url, "--workdir", str(workdir)]
    assert main(args) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "left by a killed build" in line]
    assert len(listed) == 3 and all(line.startswith("would remove ") for line in listed)
    assert all(p.exists() for p in (refit, export, synth)), "a dry run deletes nothing"
    assert main([*args, "--yes"]) == 0
    assert not any(p.exists() for p in (refit, export, synth))
    assert (TrialStore(workdir, "s").trial_dir(0)).is_dir()


def test_clean_keeps_a_trial_folder_a_user_added_to(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from search.clean import main

    url, _ = _study(tmp_path, [0.9, 0.5])
    store = TrialStore(tmp_path, "s")
    (store.trial_dir(1) / "notes.txt").write_text("mine")
    assert main(["--name", "s", "--storage", url, "--workdir", str(tmp_path), "--keep-top", "1", "--yes"]) == 0
    assert (store.trial_dir(1) / "notes.txt").read_text() == "mine"
    assert f"kept {store.trial_dir(1)}: it is not what this harness wrote there (it holds notes.txt" in caplog.text
    assert store.retain({0}) == [] and store.trial_dir(1).is_dir()


def test_clean_leaves_a_hand_made_trial_folder_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23: trial_0099 (four digits, no trial 99) was listed as trial_00099 and left while
    --yes said it was removed; a folder the store did not write is neither listed nor removed."""
    from search.clean import main

    url, _ = _study(tmp_path, [0.9, 0.5])
    store = TrialStore(tmp_path, "s")
    notes = store.root / "trial_0099"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    stray = store.trial_dir(99)  # the store's name, but no trial 99 in the study
    stray.mkdir()
    args = ["--name", "s", "--storage", url, "--workdir", str(tmp_path), "--keep-top", "1", "--yes"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trial_0099" not in out and "trial_00099" not in out
    assert str(store.trial_dir(1)) in out and not store.trial_dir(1).exists()
    assert (notes / "notes.txt").read_text() == "mine" and stray.is_dir()
