"""grpc://host:port: a study run through a real Optuna gRPC storage proxy over a real SQLite file."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import optuna
import pytest

pytest.importorskip("grpc", reason="the grpc extra (grpcio) is not installed")

from optuna.storages import RDBStorage, run_grpc_proxy_server  # noqa: E402

from search.common.optuna_compat import no_experimental_warnings  # noqa: E402
from search.storage.backends import open_storage, storage_file, takes_concurrent_writers  # noqa: E402
from search.storage.forms import check_storage_url  # noqa: E402
from search.storage.urls import StorageUrlError  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_study_through_the_proxy_lands_in_the_storage_behind_it(tmp_path: Path) -> None:
    port = _free_port()
    behind = RDBStorage(f"sqlite:///{tmp_path / 'behind.db'}")
    with no_experimental_warnings():
        threading.Thread(target=run_grpc_proxy_server, args=(behind,),
                         kwargs={"host": "127.0.0.1", "port": port}, daemon=True).start()
    url = f"grpc://127.0.0.1:{port}"
    assert takes_concurrent_writers(url) and storage_file(url) is None
    deadline = time.monotonic() + 20
    while True:  # the server thread takes a moment to listen
        try:
            study = optuna.create_study(study_name="g", storage=open_storage(url), load_if_exists=True)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(optuna.load_study(study_name="g", storage=behind).trials) == 2


@pytest.mark.parametrize("url,problem", [
    ("grpc://localhost", "must be grpc://host:port"),
    ("grpc://h:70000", "port that is not a number from 1 to 65535"),  # no @: could be user:password, not shown
    ("grpc://h:1/db", "names a path"),
])
def test_a_proxy_url_is_host_and_port(url: str, problem: str) -> None:
    with pytest.raises(StorageUrlError, match=problem):
        check_storage_url(url)
