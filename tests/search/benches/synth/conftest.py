"""Benches shared by the synth tests, drawn once per session at small image sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.benches.synth import generate


@pytest.fixture(scope="session")
def small_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 people: the smallest bench that still has several people in every gender x age cell."""
    return generate(tmp_path_factory.mktemp("synth") / "small", people=60, size=(48, 64), seed=3,
                    progress=False)


@pytest.fixture(scope="session")
def bench500(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """500 people at 32x44: enough for proportions and the background correlation."""
    return generate(tmp_path_factory.mktemp("synth") / "b500", people=500, size=(32, 44), seed=11,
                    n_eval_people=30, progress=False)
