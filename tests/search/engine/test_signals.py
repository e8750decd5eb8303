"""Ctrl-C and SIGTERM on a worker: its running trial is marked failed, it exits cleanly, and the
study resumes to its budget."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search.engine.launcher import default_journal_url
from tests.support.workers import (
    REPO,
    finished,
    open_study_view,
    smoke_toml,
    trials,
    wait_for_running,
    worker_cmd,
    worker_env,
)

pytestmark = pytest.mark.slow


def test_sigint_and_sigterm_stop_a_worker_cleanly_and_the_study_resumes(bench: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "runs"
    # Unpruned 8-epoch trials, so that a trial is still running when the signal comes on a fast machine
    study_file = smoke_toml(tmp_path, epochs=8, prune=False)
    url = default_journal_url(workdir, "study")
    cmd = worker_cmd(study_file, url, bench, workdir, "--n-trials", "3")
    stopped = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        (running,) = wait_for_running(url, "study", proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130), err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        assert "resume" in err
        study = open_study_view(url, "study")
        assert study.trials[running.number].state == TrialState.FAIL, f"{sig.name} left the trial unfinished"
        assert not trials(study, TrialState.RUNNING)
        stopped.append(running.number)
    assert stopped[0] != stopped[1]

    done = subprocess.run(cmd, cwd=REPO, env=worker_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    study = open_study_view(url, "study")
    assert len(finished(study)) == 3
    assert [t.number for t in trials(study, TrialState.FAIL)] == stopped
    assert not trials(study, TrialState.RUNNING)
    assert "search.export" in done.stdout, "a finished worker ends with the summary and next commands"


def test_an_interrupt_inside_optunas_storage_code_waits_for_it_to_return() -> None:
    import os
    import sys

    from search.engine.signals import in_storage_code

    assert not in_storage_code(sys._getframe())
    where = os.path.join("site-packages", "optuna", "storages", "journal", "_file.py")
    namespace: dict = {}
    exec(compile("import sys\ndef release():\n    return sys._getframe()\n", where, "exec"), namespace)
    assert in_storage_code(namespace["release"]())
    caller: dict = {"release": namespace["release"]}
    exec(compile("def write():\n    return release().f_back\n", "search/engine/objective.py", "exec"), caller)
    assert not in_storage_code(caller["write"]())  # the objective's own frame, below no storage frame


def test_a_finished_worker_ignores_an_interrupt_but_exits_on_a_later_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import time

    from search.engine import signals

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    clock = [100.0]
    exits: list[int] = []
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(os, "_exit", exits.append)
    try:
        signals.ignore_interrupts(force_after_s=2.0)
        handler = signal.getsignal(signal.SIGTERM)
        handler(signal.SIGTERM, None)  # the stop the launcher forwards: nothing is raised
        clock[0] += 1.0
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # the terminal's copy of the same Ctrl-C
        assert exits == []
        clock[0] += 1.5
        handler(signal.SIGINT, None)  # a second Ctrl-C, later: exit now
        assert exits == [130]
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
