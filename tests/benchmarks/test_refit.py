"""benchmarks/refit.py end to end on the tiny refit study (no figure asserted, only what it saves)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import refit
from search.export import main as export_main


def test_refit_benchmark_scores_every_entry_and_saves_them(refit_study, tmp_path: Path) -> None:
    assert (
        export_main(
            [
                "--name",
                refit_study.name,
                "--storage",
                refit_study.storage,
                "--out",
                str(refit_study.workdir / "bundle"),
            ]
        )
        == 0
    )
    refit.main(
        [
            "--name",
            refit_study.name,
            "--workdir",
            str(refit_study.workdir),
            "--trials",
            "0",
            "--folds",
            "2",
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    saved = json.loads((tmp_path / "results" / "refit.json").read_text())
    entries = [e["entry"] for e in saved["figures"]["entries"]]
    assert entries[0] == "study's exported ensemble" and entries[-1] == "ensemble selected with the refits"
    assert any("fold group (K=2" in e for e in entries) and any("all-people refit" in e for e in entries)
    assert "ensemble selected with the fold groups" in entries
    assert "tinyrefit#0/folds-2" in saved["figures"]["entries"][-1]["candidates"]
    for entry in saved["figures"]["entries"]:
        assert 0.0 <= entry["eval_macro_f1"] <= 1.0
    assert (refit_study.workdir / "bundle-refit" / "manifest.json").is_file()
