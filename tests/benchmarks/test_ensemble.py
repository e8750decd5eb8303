"""benchmarks/ensemble.py end to end on a tiny bench: every method reported, eval labels scored, saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import ensemble
from tests.benchmarks.conftest import saved_result


@pytest.mark.slow
def test_ensemble_reports_every_method_with_eval_labels(bench_args: list[str], tmp_path: Path) -> None:
    out = ensemble.main(bench_args + ["--trials", "3", "--epochs", "1", "--backbones", "test_resnet,test_efficientnet",
                                      "--workdir", str(tmp_path / "ens"), "--device", "cpu"])
    methods = [c["method"] for c in out["final"]]
    assert methods == ["best single", "top-3 soft vote", "top-5 soft vote", "selected ensemble",
                       "selected + decision rule"]
    assert set(out["eval_labels"]) == set(methods)
    assert all(0.0 <= v["macro_f1"] <= 1.0 for v in out["eval_labels"].values())
    assert saved_result(tmp_path, "ensemble")["inputs"]["study"].startswith("ensemble_")
