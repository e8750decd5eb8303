"""W&B in offline mode: the smoke study's trials and its ensemble, read back from the offline run files."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

pytest.importorskip("wandb", reason='the track extra is not installed: pip install -e ".[track]"')

from wandb.proto import wandb_internal_pb2 as pb  # noqa: E402

from search.ensemble import main as ensemble_main  # noqa: E402
from search.engine.track import TrackCallback, open_tracker  # noqa: E402
from tests.search.conftest import SmokeRun  # noqa: E402

BLOCK, HEADER = 32768, 7  # the .wandb file: a 7-byte header, then LevelDB-log records in 32 KiB blocks


def read_records(path: Path) -> list[pb.Record]:
    """Every record of an offline ``run-*.wandb`` file (W&B's own protobuf messages)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    records, chunk, pos = [], b"", HEADER
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(chunk)
            records.append(record)
            chunk = b""
    return records


def _key(item: object) -> str:
    return ".".join(item.nested_key) or item.key  # type: ignore[attr-defined]


def offline_runs(folder: Path) -> dict[str, dict]:
    """run name -> its config, per-step history and final summary, from the offline run files."""
    runs = {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict = {"config": {}, "history": [], "summary": {}, "group": None}
        for r in read_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run["name"], run["group"], run["project"] = r.run.display_name, r.run.run_group, r.run.project
                run["config"].update({_key(i): json.loads(i.value_json) for i in r.run.config.update})
            elif kind == "history":
                run["history"].append({_key(i): json.loads(i.value_json) for i in r.history.item})
            elif kind == "summary":
                run["summary"].update({_key(i): json.loads(i.value_json) for i in r.summary.update})
        if "name" in run:  # a file W&B has not yet given its run record is no run of ours to read
            runs[run["name"]] = run
    return runs


def test_trials_and_the_ensemble_are_offline_runs(smoke_run: SmokeRun, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # W&B records the command line unless told not to; a storage password must not reach its files
    monkeypatch.setattr("sys.argv", ["search.run", "--storage", "postgresql://automl:Pa55word@db/automl"])
    study = smoke_run.study
    callback = TrackCallback(open_tracker("wandb", smoke_run.workdir, study.study_name, str(tmp_path)))
    finished = [t for t in study.trials if t.state.is_finished()][:2]
    for trial in finished:
        callback(study, trial)
    assert not callback.failed
    assert ensemble_main(["--study", "smoke", "--storage", smoke_run.storage, "--workdir", str(smoke_run.workdir),
                          "--no-eval", "--track", "wandb", "--track-to", str(tmp_path)]) == 0
    expected = sorted([f"trial {t.number}" for t in finished] + ["ensemble (ensemble)"])
    # W&B's service process writes the files; on a loaded machine the last run's record has been seen
    # to land after finish() returned, so read until it is there (or 30 s have passed)
    deadline = time.monotonic() + 30
    while sorted(runs := offline_runs(tmp_path)) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    assert sorted(runs) == expected
    for trial in finished:
        run = runs[f"trial {trial.number}"]
        assert run["project"] == "smoke" and run["group"] == "trials"
        assert run["config"]["backbone"] == trial.user_attrs["config"]["backbone"]
        epochs = [h for h in run["history"] if "val_macro_f1" in h]
        assert [h["_step"] for h in epochs] == [h["epoch"] for h in trial.user_attrs["history"]]
        assert [h["val_loss"] for h in epochs] == pytest.approx([h["val_loss"] for h in trial.user_attrs["history"]])
        assert run["summary"]["confusion"] == trial.user_attrs["confusion"]
        assert [run["summary"][f"f1_class_{i:02d}"] for i in range(18)] == pytest.approx(trial.user_attrs["per_class_f1"])
    saved = json.loads((smoke_run.workdir / "trials" / "smoke" / "ensemble.json").read_text())
    ensemble = runs["ensemble (ensemble)"]
    assert ensemble["group"] == "ensemble" and ensemble["config"]["candidates"] == len(saved["candidates"])
    best = next(s for s in saved["honest"]["scores"] if s["method"] == "best single")
    assert ensemble["summary"]["heldout_macro_f1/best_single"] == pytest.approx(best["macro_f1"])
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and b"Pa55word" in p.read_bytes()]
