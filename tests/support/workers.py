"""Fixtures for the distributed-worker tests: a tiny bench, and a throw-away PostgreSQL server.

The server is Debian's (``apt-get install postgresql``; ``.ci/run`` installs it), started from
/usr/lib/postgresql/*/bin on a free loopback port with its sockets in a temporary folder and
password authentication (scram-sha-256), so URLs carry a real password. PostgreSQL refuses to
run as root: as root the server runs as the ``postgres`` system user (created when missing).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryFailedTrialCallback
from optuna.trial import FrozenTrial, TrialState

from search.storage.backends import open_storage
from search.benches.synth import generate
from search.storage.trial_attrs import TrialAttrs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(
        tmp_path_factory.mktemp("bench") / "bench", people=60, size=(48, 64), seed=0, progress=False
    )


def smoke_toml(
    tmp_path: Path, epochs: int = 3, lr: str | None = None, n_trials: int | None = None, prune: bool = True
) -> Path:
    """A copy of studies/smoke.toml with more epochs, another lr spec or budget, or no pruner."""
    text = (REPO / "studies" / "smoke.toml").read_text()
    text = text.replace("epochs = 3", f"epochs = {epochs}").replace("patience = 3", f"patience = {epochs}")
    if not prune:
        pruner = '[pruner]\nname = "successive_halving"\nmin_resource = 1\nreduction_factor = 2\n'
        assert pruner in text, "studies/smoke.toml's [pruner] table changed: update smoke_toml"
        text = text.replace(pruner, '[pruner]\nname = "none"\n')
    if lr is not None:
        text = text.replace("lr = { low = 3e-3, high = 3e-2, log = true }", f"lr = {lr}")
    if n_trials is not None:
        text = text.replace("n_trials = 8", f"n_trials = {n_trials}")
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def worker_env(threads: int = 2) -> dict[str, str]:
    """Environment of a worker subprocess; two workers at once get one thread each (2 cores)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}


def study_cmd(verb: str, study: str | Path, bench: Path, workdir: Path, *extra: str) -> list[str]:
    """``python -m VERB --study STUDY --data BENCH --workdir WORKDIR --device cpu EXTRA...``."""
    return [sys.executable, "-m", verb, "--study", str(study), "--data", str(bench), "--workdir", str(workdir),
            "--device", "cpu", *extra]


def worker_cmd(study: str | Path, storage: str, bench: Path, workdir: Path, *extra: str) -> list[str]:
    return study_cmd("search.worker", study, bench, workdir, "--storage", storage, *extra)


# --- PostgreSQL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    socket_dir: Path
    bin_dir: Path
    run_as: list[str]  # prefix that runs a command as the server's owner

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        _run(
            self.run_as
            + [
                str(self.bin_dir / "createdb"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                self.user,
                name,
            ]
        )
        return self.url(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _server_user() -> tuple[str, list[str]]:
    """The account that owns the server, and the prefix that runs commands as it."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"])
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("tests run as root but runuser (util-linux) is missing to start PostgreSQL as postgres")
    return "postgres", [runuser, "-u", "postgres", "--"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    bin_dir = Path(found[-1]).parent
    owner, run_as = _server_user()
    # Under /tmp, not pytest's tmp_path: the server account must be able to reach the folder.
    root = Path(tempfile.mkdtemp(prefix="pg-test-"))
    data, sockets, pwfile = root / "data", root / "sockets", root / "pwfile"
    sockets.mkdir()
    password = "pw" + secrets.token_hex(12)
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, owner)
        shutil.chown(sockets, owner)
        shutil.chown(pwfile, owner)
    port = _free_port()
    _run(
        run_as
        + [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "automl",
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
    _run(
        run_as
        + [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ]
    )
    try:
        yield PostgresServer("127.0.0.1", port, "automl", password, sockets, bin_dir, run_as)
    finally:
        subprocess.run(
            run_as + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's server; the URL carries the password."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return postgres.create_database(name)


# --- waiting on and reading a study -------------------------------------------------------------


def open_study_view(url: str, name: str) -> optuna.Study:
    """The study as the test sees it (no sampler, no trials run from here)."""
    return optuna.load_study(study_name=name, storage=open_storage(url))


def trials(study: optuna.Study, *states: TrialState) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=states or None)


def finished(study: optuna.Study) -> list[FrozenTrial]:
    return trials(study, TrialState.COMPLETE, TrialState.PRUNED)


def wait_for_running(
    url: str,
    name: str,
    proc: subprocess.Popen[str] | None = None,
    count: int = 1,
    epochs_done: int = 0,
    timeout_s: float = 120,
) -> list[FrozenTrial]:
    """Wait until ``count`` trials are inside the objective, ``epochs_done`` epochs in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"worker exited ({proc.returncode}) before a trial ran:\n{proc.communicate()}"
            )
        try:
            study = open_study_view(url, name)
        except KeyError:
            time.sleep(0.3)
            continue
        running = [
            t
            for t in trials(study, TrialState.RUNNING)
            if TrialAttrs.read(t).worker is not None and len(t.intermediate_values) >= epochs_done
        ]
        if len(running) >= count:
            return running
        time.sleep(0.3)
    raise AssertionError(f"no {count} running trial(s) in {name} after {timeout_s} s")


def retried_from(trial: FrozenTrial) -> int | None:
    """The trial this one retries (Optuna's retry callback records it), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryFailedTrialCallback.retried_trial_number(trial)
