"""``python -m search.worker``: its flags, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.options import RunOptions
from search.run import build_parser, options_from_args
from search.storage import StorageSettings, open_storage
from search.worker import default_worker_index, main, worker_parser


def test_worker_takes_the_run_flags_plus_its_index() -> None:
    args = worker_parser().parse_args(
        [
            "--study",
            "full",
            "--storage",
            "postgresql://u@h/db",
            "--workers",
            "4",
            "--heartbeat",
            "10",
            "--grace",
            "60",
            "--worker-index",
            "7",
        ]
    )
    opts = options_from_args(args)
    assert (opts.study, opts.storage, opts.worker_index) == ("full", "postgresql://u@h/db", 7)
    assert opts.storage_settings() == StorageSettings(heartbeat_interval_s=10, grace_period_s=60, max_retry=1)
    assert args.workers == 4


def test_worker_indices_differ_from_the_creating_run() -> None:
    assert 1 <= default_worker_index() <= 1_000_000


def test_worker_needs_a_storage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--study", "smoke"])
    assert info.value.code == 2
    assert "--storage is required" in capsys.readouterr().err


def test_worker_refuses_plain_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--study", "smoke", "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--workdir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "plain SQLite" in err and "journal://" in err and "postgresql://" in err
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize(
    ("heartbeat", "grace", "message"),
    [
        (0, None, "--heartbeat must be"),
        (None, 0, "--grace must be"),
        (10, 10, "must be longer than --heartbeat"),
    ],
)
def test_heartbeat_settings_are_checked(heartbeat: int | None, grace: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunOptions(study="smoke", heartbeat_s=heartbeat, grace_s=grace)


def test_heartbeat_flags_reach_the_storage(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--study", "smoke", "--heartbeat", "2", "--grace", "5"])
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", options_from_args(args).storage_settings())
    assert storage.get_heartbeat_interval() == 2
    assert storage.grace_period == 5
    default = RunOptions(study="smoke").storage_settings()
    assert (default.heartbeat_interval_s, default.grace_period_s) == (30, 120)
    assert RunOptions(study="smoke", heartbeat_s=60).storage_settings().grace_period_s == 240
