"""The report opened in a real headless Chromium (skipped, saying why, where Chromium is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from benchmarks.report_render import find_chromium, panel_screenshot
from search.report import main as report_main
from tests.support.tiny_study import TinyStudy, bundle_dir, tiny_study  # noqa: F401 (fixtures)

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (.ci/run does)")


def test_the_report_renders_its_figures_and_pictures_in_chromium(
    tiny_study: TinyStudy, bundle_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    page = tmp_path / "tiny.html"
    assert report_main(["--name", "tiny", "--storage", tiny_study.storage, "--workdir", str(tiny_study.workdir),
                        "--bundle", str(bundle_dir), "--out", str(page)]) == 0
    png = tmp_path / "panel.png"
    seen = panel_screenshot(CHROMIUM, page, png, width=800, height=600)
    text = page.read_text()
    assert seen["plots"] == text.count("Plotly.newPlot") and seen["plots_drawn"] == seen["plots"] >= 4
    assert seen["images"] == text.count("data:image/jpeg;base64,") >= 2
    assert seen["images_decoded"] == seen["images"]  # every inline picture decoded in the browser
    assert 0 < seen["errors_top"] < seen["height"]  # the panel is laid out below the figures
    with Image.open(png) as shot:
        assert shot.size == (800, 600)
        assert len(shot.convert("RGB").getcolors(1 << 20) or ()) > 50  # pictures and text, not a blank page
