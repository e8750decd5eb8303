"""A tiny synthetic bench and one finished smoke study, shared by the study-layer tests; the
tiny finished study and its bundles (tests/support/tiny_study.py) and the workers' bench and
PostgreSQL server (tests/support/workers.py) are registered here for every test under tests/search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from search.engine.options import RunOptions
from search.engine.runstudy import run_study
from search.benches.synth import generate
from tests.support.tiny_study import bundle_dir, mixed_bundles, tiny_study  # noqa: F401 (fixtures)
from tests.support.workers import bench, pg_url, postgres  # noqa: F401 (fixtures)


@dataclass(frozen=True)
class SmokeRun:
    data: Path
    workdir: Path
    storage: str
    study: optuna.Study

    def options(self, **changes: object) -> RunOptions:
        base = dict(study="smoke", data=self.data, workdir=self.workdir, storage=self.storage, device="cpu")
        return RunOptions(**{**base, **changes})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("bench") / "bench", people=72, size=(48, 64), seed=0, progress=False)


@pytest.fixture(scope="session")
def smoke_run(tiny_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    workdir = tmp_path_factory.mktemp("runs")
    storage = f"sqlite:///{workdir / 'studies.db'}"
    opts = RunOptions(study="smoke", data=tiny_bench, workdir=workdir, storage=storage, device="cpu")
    study = run_study(opts)
    return SmokeRun(tiny_bench, workdir, storage, study)


@pytest.fixture(scope="session")
def loss_run(tiny_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """The smoke study pruned on the validation loss (as the shipped study files are): 6 trials of 2 epochs."""
    text = (Path(__file__).resolve().parents[2] / "studies" / "smoke.toml").read_text()
    for old, new in (('name = "successive_halving"', 'name = "successive_halving"\nsignal = "val_loss"'),
                     ("n_trials = 8", "n_trials = 6"), ("epochs = 3", "epochs = 2")):
        assert old in text, old
        text = text.replace(old, new)
    workdir = tmp_path_factory.mktemp("loss_runs")
    (workdir / "loss.toml").write_text(text)
    storage = f"sqlite:///{workdir / 'studies.db'}"
    study = run_study(RunOptions(study=str(workdir / "loss.toml"), data=tiny_bench, workdir=workdir,
                                 storage=storage, device="cpu"))
    return SmokeRun(tiny_bench, workdir, storage, study)
