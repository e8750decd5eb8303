"""How many trial processes a run starts without --workers: one per core on a CPU, one per GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

import search.run as run
import search.engine.workercount as workercount
from search.engine.workercount import WORKERS_ENV, default_workers


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV, raising=False)  # the suite pins it to 1 (tests/conftest.py)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"device": "cpu", "cores": 2}, 2),
        ({"device": "cpu", "cores": 16}, 16),
        ({"device": "auto", "cores": 4, "gpus": 0}, 4),
        ({"device": "cpu", "cores": 4, "gpus": 2}, 4),  # --device cpu on a GPU machine: its cores
        ({"device": "cpu", "cores": 8, "threads": 2}, 1),  # --threads alone: one process, as before
        ({"device": "cpu", "cores": 8, "threads": 1}, 1),
        ({"device": "cpu", "cores": 16, "n_trials": 3}, 3),  # no more processes than trials
        ({"device": "auto", "cores": 16, "gpus": 2}, 2),
        ({"device": "cuda", "cores": 16, "gpus": 4}, 4),
        ({"device": "cuda:1", "cores": 16, "gpus": 4}, 1),
    ],
)
def test_one_process_per_core_on_a_cpu_one_per_gpu(no_env: None, kwargs: dict, expected: int) -> None:
    assert default_workers(**kwargs) == expected


def test_the_core_count_is_this_process_s_affinity(no_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workercount.os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert default_workers("cpu") == 3


def test_the_environment_replaces_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers("cpu", cores=16) == 3 and default_workers("cpu", n_trials=2, cores=16) == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=f"{WORKERS_ENV} must be a whole number >= 1 but got '{bad}'"):
            default_workers("cpu", cores=2)


def _launches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What search.run hands the local launcher (nothing trains)."""
    seen: list[int] = []
    monkeypatch.setattr(run, "run_local_workers", lambda plan: seen.append(plan.workers) or 0)
    return seen


def test_search_run_without_workers_starts_a_process_per_core(
    no_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(workercount, "usable_cores", lambda: 2)
    seen = _launches(monkeypatch)
    args = ["--study", "smoke", "--device", "cpu", "--workdir", str(tmp_path)]
    assert run.main(args) == 0
    assert run.main([*args, "--workers", "3"]) == 0  # --workers overrides
    assert seen == [2, 3]


def test_search_run_with_threads_alone_runs_one_process_as_before(
    no_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(workercount, "usable_cores", lambda: 4)
    seen = _launches(monkeypatch)
    ran: list[int | None] = []
    monkeypatch.setattr(run, "run_study", lambda plan: ran.append(plan.options.threads))
    monkeypatch.setattr(run, "print_summary", lambda study, plan: None)
    assert run.main(["--study", "smoke", "--device", "cpu", "--workdir", str(tmp_path), "--threads", "1"]) == 0
    assert seen == [] and ran == [1], "one process in this one, no launcher"
