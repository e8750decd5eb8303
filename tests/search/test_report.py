from __future__ import annotations

from pathlib import Path

from search.report import main
from tests.search.conftest import SmokeRun


def test_report_writes_every_figure(smoke_run: SmokeRun, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    assert main(["--study", "smoke", "--storage", smoke_run.storage, "--out", str(out)]) == 0
    page = out.read_text()
    for title in ("Optimisation history", "Intermediate values (pruning)", "Parameter importances",
                  "By age cutoff", "By backbone", "Per-class F1", "Confusion matrix"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("plotly") > 10  # plotly.js is inlined once, figures reference it


def test_report_on_unknown_study_is_a_clear_error(smoke_run: SmokeRun, tmp_path: Path, capsys) -> None:
    assert main(["--study", "nope", "--storage", smoke_run.storage, "--out", str(tmp_path / "x.html")]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
