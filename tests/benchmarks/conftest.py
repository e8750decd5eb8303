"""A tiny bench shared by the benchmark script tests (the scripts themselves default to larger ones)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch

from benchmarks import common

PEOPLE, SIZE = 72, (48, 64)


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return common.ensure_bench(tmp_path_factory.mktemp("bench") / "bench", PEOPLE, SIZE, 0)


@pytest.fixture(autouse=True)
def _restore_process_settings() -> Iterator[None]:
    """The scripts set torch threads, a SIGTERM handler and optuna's verbosity for their process; undo that."""
    threads, handler, verbosity = torch.get_num_threads(), signal.getsignal(signal.SIGTERM), optuna.logging.get_verbosity()
    yield
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, handler)
    optuna.logging.set_verbosity(verbosity)


@pytest.fixture
def bench_args(tiny_bench: Path, tmp_path: Path) -> list[str]:
    """Flags every script takes: the tiny bench, and results and work folders inside tmp_path."""
    return ["--bench", str(tiny_bench), "--people", str(PEOPLE), "--size", f"{SIZE[0]}x{SIZE[1]}",
            "--results-dir", str(tmp_path / "results"), "--threads", "1"]


def saved_result(tmp_path: Path, name: str) -> dict:
    """The JSON a benchmark script saved under ``tmp_path/results``."""
    return json.loads((tmp_path / "results" / f"{name}.json").read_text())


def drawn_faces(folder: Path) -> Path:
    """A folder of UTKFace-named drawn portraits (three copies of the realfaces test's ages), the
    input of the real-face benchmark scripts."""
    from tests.search.benches.realfaces.test_build import AGES, _draw_face

    folder.mkdir()
    for copy in range(3):
        for gender, ages in AGES.items():
            for i, age in enumerate(ages):
                _draw_face(folder / f"{age}_{gender}_{i % 5}_2017{copy}0{i % 10}12345678{i}.jpg.chip.jpg", age, gender)
    return folder
