"""benchmarks/variants.py end to end on drawn faces: each variant is one trial, scored on eval, and read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.conftest import drawn_faces, saved_result


def test_parse_variant_names_and_values() -> None:
    from benchmarks.variants import parse_variant

    assert parse_variant("cut58:age_cutoff=58,lr=0.002,crop=full") == ("cut58", {"age_cutoff": 58, "lr": 0.002, "crop": "full"})
    with pytest.raises(SystemExit, match="not key=value"):
        parse_variant("cut58:age_cutoff")


def test_mean_deltas_pair_each_variant_with_the_baseline_of_its_seed() -> None:
    from benchmarks.variants import mean_deltas

    runs = [{"variant": v, "seed": s, "scores": {"macro_f1": f, "old_f1": o}}
            for v, s, f, o in [("a", 0, 0.5, 0.1), ("b", 0, 0.6, 0.3), ("a", 1, 0.4, 0.2), ("b", 1, 0.3, 0.2)]]
    d = mean_deltas(runs, "a", ["b"])["b"]
    assert d["macro_f1"] == pytest.approx(0.0) and d["old_f1"] == pytest.approx(0.1)


@pytest.mark.slow
def test_variants_train_score_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import common, variants

    faces = drawn_faces(tmp_path / "faces")
    monkeypatch.setattr(common, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(variants, "WORK", tmp_path / "runs")
    argv = ["--faces", str(faces), "--seeds", "1", "--people", "40", "--eval-people", "12", "--size", "96x128",
            "--base", "backbone=test_resnet,pretrained=false,height=32,width=24,epochs=1,batch_size=16",
            "--variants", "cut58:age_cutoff=58", "--threads", "1",
            "--results-dir", str(tmp_path / "results")]
    out = variants.main(argv)
    assert [r["variant"] for r in out["runs"]] == ["cut58"]
    for run in out["runs"]:
        assert run["state"] == "COMPLETE" and not run["reused"]
        assert all(0.0 <= run["scores"][k] <= 1.0 for k in ("macro_f1", "old_f1", "old_recall", "old_precision"))
    assert out["mean_deltas"] == {}
    assert saved_result(tmp_path, "variants")["figures"]["base"]["backbone"] == "test_resnet"
    again = variants.main(argv)  # saved scores are read back, nothing is trained again
    assert all(r["reused"] for r in again["runs"])
    assert [r["scores"] for r in again["runs"]] == [r["scores"] for r in out["runs"]]


def test_subset_data_keeps_the_band_shares_and_every_eval_person(tiny_bench: Path, tmp_path: Path) -> None:
    import pandas as pd

    from benchmarks.variants import subset_data
    from search.data.layout import load_train

    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "data").symlink_to(tiny_bench)  # a bench's data folder in the competition layout
    full = pd.read_csv(tiny_bench / "train" / "train.csv", dtype={"id": str})
    data = subset_data(bench, 36)
    part = pd.read_csv(data / "train" / "train.csv", dtype={"id": str})
    assert len(part) == 36 and set(part["path"]) < set(full["path"])
    for share in (lambda df: (df["age"] >= 60).mean(), lambda df: (df["gender"] == "male").mean()):
        assert abs(share(part) - share(full)) < 0.03
    assert len(load_train(data / "train", n_jobs=1).people) == 36, "the folders read through their links"
    assert (data / "eval").resolve() == (tiny_bench / "eval").resolve()
    made = (data / "train" / "train.csv").stat().st_mtime_ns
    assert subset_data(bench, 36) == data and (data / "train" / "train.csv").stat().st_mtime_ns == made
    with pytest.raises(SystemExit, match=f"has {len(full)} train people"):
        subset_data(bench, len(full))
    (bench / "data-train20").mkdir()  # a folder of someone else's under the bench is never replaced
    with pytest.raises(SystemExit, match="not a subset this benchmark made"):
        subset_data(bench, 20)
    assert (bench / "data-train20").is_dir() and not any((bench / "data-train20").iterdir())
