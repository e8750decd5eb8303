"""The adapter over Optuna's private API, against the installed Optuna: if an upgrade moves one of
these, this file says which."""

from __future__ import annotations

import io
import re
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import BaseStorage, InMemoryStorage
from optuna.trial import TrialState

from search.common.optuna_compat import ArtifactStore, heartbeat_enabled, stored_study_id, study_storage, trial_id
from search.storage.backends import StorageSettings, open_storage


def test_the_storage_and_ids_lead_back_to_the_same_study_and_trials() -> None:
    storage = InMemoryStorage()
    optuna.create_study(study_name="other", storage=storage)
    study = optuna.create_study(study_name="mine", storage=storage)
    assert study_storage(study) is storage and isinstance(study_storage(study), BaseStorage)
    running = study.ask()
    study.tell(study.ask(), 0.5)
    for trial in (running, *study.get_trials(deepcopy=False)):
        assert study_storage(study).get_trial(trial_id(trial)).number == trial.number
    study_storage(study).set_trial_state_values(trial_id(running), TrialState.FAIL)
    assert study.trials[running.number].state == TrialState.FAIL

    by_name = {s.study_name: stored_study_id(s) for s in storage.get_all_studies()}
    assert storage.get_study_id_from_name("mine") == by_name["mine"] != by_name["other"]
    assert len(storage.get_all_trials(by_name["mine"], deepcopy=False)) == 2


def test_heartbeats_are_seen_on_rdb_storages_only(tmp_path: Path) -> None:
    assert not heartbeat_enabled(optuna.create_study())
    journal = open_storage(f"journal://{tmp_path / 's.journal'}")
    assert not heartbeat_enabled(optuna.create_study(study_name="j", storage=journal))
    sqlite = open_storage(f"sqlite:///{tmp_path / 's.db'}", StorageSettings(heartbeat_interval_s=5, grace_period_s=20))
    assert heartbeat_enabled(optuna.create_study(study_name="s", storage=sqlite))


def test_the_artifact_store_type_fits_the_store_the_harness_uses(tmp_path: Path) -> None:
    store: ArtifactStore = FileSystemArtifactStore(str(tmp_path))
    for method in ("open_reader", "write", "remove"):
        assert callable(getattr(store, method)), f"ArtifactStore.{method}"
    assert {"open_reader", "write", "remove"} <= set(vars(ArtifactStore))
    store.write("a", io.BytesIO(b"x"))
    assert store.open_reader("a").read() == b"x"


PRIVATE = re.compile(r"\boptuna(\.\w+)*\._[a-z]\w*|\._(storage|trial_id|study_id)\b|_heartbeat\b|_protocol\b")


def test_no_module_but_the_adapter_touches_optunas_private_api() -> None:
    repo = Path(__file__).resolve().parents[3]
    found = [
        f"{path.relative_to(repo)}:{number}: {line.strip()}"
        for folder in ("search", "runners", "spaces", "benchmarks")
        for path in sorted((repo / folder).rglob("*.py"))
        if path.name != "optuna_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if PRIVATE.search(line)
    ]
    assert not found, "use search/common/optuna_compat.py instead:\n" + "\n".join(found)
