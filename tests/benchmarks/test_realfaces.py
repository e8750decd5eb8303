"""benchmarks/realfaces.py end to end on drawn faces: both sides run and are scored on eval labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks.conftest import drawn_faces, saved_result


@pytest.mark.slow
def test_realfaces_runs_both_sides_and_scores_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import common, realfaces

    faces = drawn_faces(tmp_path / "faces")
    monkeypatch.setattr(common, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(realfaces, "WORK", tmp_path / "runs")
    out = realfaces.main(["--faces", str(faces), "--seeds", "1", "--people", "40", "--eval-people", "12",
                          "--size", "96x128", "--plain-epochs", "1", "--budget-factor", "6", "--study", "smoke",
                          "--threads", "1", "--results-dir", str(tmp_path / "results")])
    (run,) = out["runs"]
    for side in ("plain", "harness"):
        assert 0.0 <= run[side]["scores"]["macro_f1"] <= 1.0 and 0.0 <= run[side]["scores"]["old_f1"] <= 1.0
    harness = run["harness"]
    assert set(harness["seconds"]) == {"run", "ensemble", "export", "predict"}
    assert harness["trials"]["complete"] >= 1 and 0.0 <= harness["honest_estimate"] <= 1.0
    assert harness["exported_method"] == harness["shipped"]["method"] and harness["exported_method"] in harness["honest"]
    sds = (run["plain"]["scores"]["macro_f1_sd_people"], harness["scores"]["macro_f1_sd_people"],
           harness["scores"]["minus_plain_sd_people"])
    assert all(0.0 <= sd < 0.5 for sd in sds) and max(sds) > 0.0, "12 eval people: each figure is a draw"
    assert saved_result(tmp_path, "realfaces")["figures"]["runs"][0]["seed"] == 1

    # the plain side alone, timed again on today's machine: the cached time is kept beside the new one
    again = realfaces.main(["--faces", str(faces), "--seeds", "1", "--people", "40", "--eval-people", "12",
                            "--size", "96x128", "--plain-epochs", "1", "--threads", "1", "--plain-only",
                            "--fresh-plain", "--name", "plain_again", "--results-dir", str(tmp_path / "results")])
    (plain,) = [r["plain"] for r in again["runs"]]
    assert "harness" not in again["runs"][0] and "mean" not in again
    assert not plain["reused"] and plain["cached_seconds"] == run["plain"]["seconds"]
    cached = realfaces.cached_plain(Path(run["bench"]), realfaces.PlainSettings(epochs=1), 1)
    assert cached["reused"] and cached["seconds"] == plain["seconds"], "the fresh run replaced the cache"
