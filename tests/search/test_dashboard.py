"""The real optuna-dashboard, over the storage the smoke study wrote, serves what users look at."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from optuna.trial import TrialState

from tests.search.conftest import SmokeRun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_dashboard_serves_trials_notes_and_artifacts(smoke_run: SmokeRun) -> None:
    port = _free_port()
    exe = Path(sys.executable).with_name("optuna-dashboard")
    proc = subprocess.Popen(
        [str(exe), smoke_run.storage, "--artifact-dir", str(smoke_run.workdir / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                studies = json.loads(_get(f"{base}/api/studies"))["study_summaries"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("dashboard did not start")
        (summary,) = [s for s in studies if s["study_name"] == "smoke"]
        detail = json.loads(_get(f"{base}/api/studies/{summary['study_id']}"))
        trials = detail["trials"]
        assert len(trials) == len(smoke_run.study.trials)
        assert "# smoke" in detail["note"]["body"] and "macro-F1" in detail["note"]["body"]
        complete = [t for t in trials if t["state"] == TrialState.COMPLETE.name.capitalize()]
        pruned = [t for t in trials if t["state"] == TrialState.PRUNED.name.capitalize()]
        assert complete and pruned
        for trial in complete:
            assert trial["intermediate_values"]
            keys = {a["key"] for a in trial["user_attrs"]}
            assert {"config", "per_class_f1", "best_epoch", "seconds_per_epoch", "device"} <= keys
            names = {a["filename"]: a for a in trial["artifacts"]}
            assert set(names) == {"val_probs.npy", "confusion_matrix.png"}
            png = _get(f"{base}/artifacts/{summary['study_id']}/{trial['trial_id']}/"
                       f"{names['confusion_matrix.png']['artifact_id']}")
            assert png.startswith(b"\x89PNG")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
