"""MLflow through its own client: one experiment per study, one run per trial, one per ensemble.

The default store is a SQLite file in the work folder: MLflow 3 refuses its plain file store
(``./mlruns``) unless ``MLFLOW_ALLOW_FILE_STORE`` is set, and SQLite is what it recommends for
local use. Artifacts (confusion matrix, per-class F1, the ensemble's comparison) go to
``<workdir>/mlartifacts/<study>``, not to the current folder. Several workers may start at once:
creating the store and the experiment is done under a file lock.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from search.engine.track.records import EnsembleLog, TrialLog, mlflow_uri
from search.storage.urls import redact

log = logging.getLogger(__name__)

STATUS = {"complete": "FINISHED", "pruned": "KILLED", "fail": "FAILED"}
MAX_PARAM = 6000  # MLflow's limit on a parameter value


def default_uri(workdir: Path) -> str:
    return mlflow_uri(workdir)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _params(values: dict[str, Any]) -> list[Param]:
    return [Param(str(k), str(v)[:MAX_PARAM]) for k, v in sorted(values.items())]


class MlflowTracker:
    def __init__(self, workdir: Path, study: str, uri: str | None = None) -> None:
        self.uri = mlflow_uri(workdir, uri)
        self.where = f"MLflow {redact(self.uri)}, experiment {study!r}"
        with _locked(Path(workdir) / ".mlflow.lock"):
            self.client = MlflowClient(tracking_uri=self.uri)
            found = self.client.get_experiment_by_name(study)
            if found is not None:
                self.experiment_id = found.experiment_id
            else:
                artifacts = (Path(workdir) / "mlartifacts" / study).resolve().as_uri()
                self.experiment_id = self.client.create_experiment(study, artifact_location=artifacts)
        log.info("tracking to %s", self.where)

    def log_trial(self, record: TrialLog) -> None:
        run = self.client.create_run(self.experiment_id, run_name=record.run_name,
                                     tags={"kind": "trial", **record.tags})
        run_id = run.info.run_id
        metrics = [Metric(key, value, 0, row["epoch"]) for row in record.epochs
                   for key, value in row.items() if key != "epoch"]
        metrics += [Metric(key, value, 0, 0) for key, value in record.final_metrics().items()]
        self.client.log_batch(run_id, metrics=metrics, params=_params(record.params))
        self.client.log_dict(run_id, record.per_class_table(), "per_class_f1.json")
        if record.confusion is not None:
            self.client.log_dict(run_id, {"rows": "true class", "columns": "predicted class",
                                          "matrix": record.confusion}, "confusion.json")
        self.client.set_terminated(run_id, STATUS.get(record.state, "FAILED"))

    def log_ensemble(self, record: EnsembleLog) -> None:
        tags = {"kind": "ensemble", "optuna.study": record.study, "source": record.source}
        if record.bundle:
            tags["bundle"] = record.bundle
        run = self.client.create_run(self.experiment_id, run_name=record.run_name, tags=tags)
        metrics = [Metric(key, value, 0, 0) for key, value in record.metrics.items()]
        self.client.log_batch(run.info.run_id, metrics=metrics, params=_params(record.params),
                              tags=[RunTag("mlflow.note.content", f"ensemble of study {record.study}")])
        self.client.log_dict(run.info.run_id, record.summary, "ensemble.json")
        self.client.set_terminated(run.info.run_id, "FINISHED")
