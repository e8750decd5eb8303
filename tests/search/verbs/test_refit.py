"""python -m search.refit end to end on a tiny study: folds, out-of-fold score, all-people, resume."""

from __future__ import annotations

import json

import numpy as np
import optuna

from runners.metrics import macro_f1
from search.refit import main
from search.refitting.store import RefitStore


def test_folds_cover_every_person_once_and_score_out_of_fold(refit_study, capsys) -> None:
    rc = main(
        [
            "--name",
            refit_study.name,
            "--storage",
            refit_study.storage,
            "--trials",
            "0",
            "--folds",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    store = RefitStore(refit_study.store, 0)
    assert store.fold_groups() == [3]  # K from the study file's [split] folds
    rows, probs, fold = store.load_oof(3)
    n = len(refit_study.data.images)
    assert np.array_equal(np.sort(rows), np.arange(n)) and probs.shape == (n, 18)
    assert set(fold.tolist()) == {0, 1, 2}
    seen = []
    for i in range(3):
        held, _ = store.load_held_out(store.fold_dir(3, i))
        seen.extend(held.tolist())
    assert sorted(seen) == list(range(n))  # every image row held out exactly once
    summary = store.load_summary(3)
    assert summary["oof_macro_f1"] == macro_f1(refit_study.data.labels, probs)
    assert f"{summary['oof_macro_f1']:.4f}" in out
    config = json.loads((store.fold_dir(3, 0) / "config.json").read_text())
    assert config["epochs"] == 2 and config["backbone"] == "test_resnet"  # best epoch of a 2-epoch trial


def test_a_bare_folds_takes_k_from_the_stored_study_not_from_its_edited_study_file(refit_study, caplog) -> None:
    """search.run records [split] folds in the study at its creation; the study file edited since
    (here to folds = 3, or to none) does not change what the stored study's refit is."""
    from search.refit import study_folds
    from search.refitting.train import open_refit

    study = optuna.load_study(study_name=refit_study.name, storage=refit_study.storage)
    assert study_folds(open_refit(refit_study.name, refit_study.storage)) == 3  # recorded before: the file's
    study.set_user_attr("folds", 2)
    assert study_folds(open_refit(refit_study.name, refit_study.storage)) == 2
    path = refit_study.workdir / "refit.toml"
    path.write_text(path.read_text().replace("folds = 3\n", ""))  # still 2: the study's record wins
    assert study_folds(open_refit(refit_study.name, refit_study.storage), path) == 2
    study.set_user_attr("folds", 0)
    args = ["--name", refit_study.name, "--storage", refit_study.storage, "--trials", "0", "--folds"]
    assert main(args) == 2
    assert f"study {refit_study.name!r} was created from a study file with no [split] folds" in caplog.text
    assert not RefitStore(refit_study.store, 0).root.exists()
