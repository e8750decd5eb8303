"""benchmarks/old_band.py on a drawn real-face bench: the ranking, the ceiling and the label-free line
are what their definitions say, for a cached plain run's probabilities and for an exported bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import old_band
from runners.classes import CANONICAL_CUTOFF, decompose
from search.benches.realfaces import build
from search.benches.realfaces.build import eval_person_of_image
from tests.benchmarks.conftest import drawn_faces, saved_result


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oldband")
    out = root / "bench"
    build(drawn_faces(root / "faces"), out, n_train=40, n_eval=12, seed=3, size=(96, 128))
    return out


def _cached_run(bench: Path, folder: Path, p_old_of_age) -> Path:
    """A plain run's cache (.json with image_ids, .npy beside) whose probabilities put ``p_old_of_age(age)``
    on the right mask and gender's old class and the rest on its middle band."""
    labels = pd.read_csv(bench / "eval_labels.csv")
    probs = np.zeros((len(labels), 18))
    for row, (label, age) in enumerate(zip(labels["label"], labels["age"], strict=True)):
        base = label - decompose(np.array([label]))[2][0]  # the band-0 class of its mask and gender
        probs[row, base + 2], probs[row, base + 1] = p_old_of_age(age), 1.0 - p_old_of_age(age)
    folder.mkdir()
    np.save(folder / "plain-x.npy", probs)
    (folder / "plain-x.json").write_text(json.dumps({"image_ids": labels["ImageID"].tolist()}))
    return folder / "plain-x.json"


def test_every_eval_image_maps_to_one_of_the_benchs_eval_people(bench: Path) -> None:
    person_of = eval_person_of_image(bench)
    labels = pd.read_csv(bench / "eval_labels.csv")
    people = labels["ImageID"].map(person_of)
    assert people.notna().all() and people.nunique() == 12
    assert (labels.groupby(people)["age"].nunique() == 1).all(), "one person, one age"


def test_a_perfect_ranking_under_the_line_reaches_the_ceiling_only_with_a_lower_line(
    bench: Path, tmp_path: Path
) -> None:
    # old people get P(old) 0.4, everyone else less by age: ranked perfectly, never the argmax
    source = _cached_run(bench, tmp_path / "perfect",
                         lambda age: 0.4 if age >= CANONICAL_CUTOFF else age / 200)
    figures = old_band.main(["--sources", str(source), "--benches", str(bench), "--names", "perfect",
                             "--results-dir", str(tmp_path / "results")])
    (m,) = figures["models"]
    assert m["argmax"]["old_f1"] == 0.0 and m["argmax"]["predicted_old_share"] == 0.0
    assert set(m["auc_old_against"].values()) <= {1.0, None} and 1.0 in m["auc_old_against"].values()
    assert m["ceiling"]["old_f1"] == pytest.approx(1.0)
    train = pd.read_csv(bench / "data" / "train" / "train.csv")
    eval_share = (pd.read_csv(bench / "eval_labels.csv")["age"] >= CANONICAL_CUTOFF).mean()
    assert m["training_share_line"]["share"] == pytest.approx((train["age"] >= CANONICAL_CUTOFF).mean())
    if m["training_share_line"]["share"] <= eval_share:  # the line predicts no more old than there are
        assert m["training_share_line"]["old_f1"] > 0.0
    ages = list(m["mean_p_old_by_age"].values())
    assert ages == sorted(ages), "mean P(old) rises with age"
    assert saved_result(tmp_path, "old_band")["figures"]["models"][0]["name"] == "perfect"


def test_a_coin_ranks_at_one_half(bench: Path, tmp_path: Path) -> None:
    source = _cached_run(bench, tmp_path / "flat", lambda age: 0.3)
    (m,) = old_band.main(["--sources", str(source), "--benches", str(bench),
                          "--results-dir", str(tmp_path / "results")])["models"]
    assert set(m["auc_old_against"].values()) <= {0.5, None} and 0.5 in m["auc_old_against"].values()
    assert m["old_f1_sd_people"] == 0.0, "no old predictions in any draw"


def test_a_bundle_is_scored_on_the_bench_and_a_wrong_pairing_is_refused(
    bench: Path, refit_study, tmp_path: Path
) -> None:
    from search.export import main as export

    out = tmp_path / "bundle"
    assert export(["--name", refit_study.name, "--storage", f"sqlite:///{refit_study.workdir / 'studies.db'}",
                   "--out", str(out), "--max-members", "1", "--decision-rule", "off"]) == 0
    (m,) = old_band.main(["--sources", str(out), "--benches", str(bench), "--device", "cpu",
                          "--results-dir", str(tmp_path / "results")])["models"]
    assert m["eval_images"] == len(pd.read_csv(bench / "eval_labels.csv"))
    assert 0.0 <= m["ceiling"]["old_f1"] <= 1.0 and m["ceiling"]["old_f1"] >= m["argmax"]["old_f1"]
    other = _cached_run(bench, tmp_path / "other", lambda age: 0.1)
    with pytest.raises(SystemExit, match="one bench per source"):
        old_band.main(["--sources", str(out), str(other), "--benches", str(bench)])
    with pytest.raises(SystemExit, match="not a real-face bench"):
        old_band.main(["--sources", str(other), "--benches", str(tmp_path)])
    with pytest.raises(SystemExit, match="neither a bundle folder"):
        old_band.main(["--sources", str(tmp_path / "nothing.json"), "--benches", str(bench)])
    (tmp_path / "wrong").mkdir()
    np.save(tmp_path / "wrong" / "plain-y.npy", np.full((1, 18), 1 / 18))
    (tmp_path / "wrong" / "plain-y.json").write_text(json.dumps({"image_ids": ["nobody.jpg"]}))
    with pytest.raises(SystemExit, match="does not have"):
        old_band.main(["--sources", str(tmp_path / "wrong" / "plain-y.json"), "--benches", str(bench)])
