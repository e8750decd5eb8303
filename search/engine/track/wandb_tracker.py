"""Weights & Biases through its own client, offline unless ``WANDB_MODE`` says otherwise.

One W&B run per trial (project = the study, group "trials") and one per ensemble (group
"ensemble"). Offline runs are folders ``<dir>/wandb/offline-run-*``; ``wandb sync`` uploads
them later. No W&B account or network is needed to log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import wandb

from search.engine.track.records import EnsembleLog, TrialLog, class_key

log = logging.getLogger(__name__)


class WandbTracker:
    def __init__(self, workdir: Path, study: str, folder: str | None = None) -> None:
        self.study = study
        self.dir = Path(folder) if folder else Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mode = os.environ.get("WANDB_MODE", "offline")
        self.where = f"W&B project {study!r} ({self.mode}, {self.dir / 'wandb'})"
        log.info("tracking to %s", self.where)

    def _init(self, name: str, group: str, config: dict, tags: list[str]) -> wandb.Run:
        # No run metadata: W&B would record the command line, which may hold a storage URL's password.
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True,
                                  x_disable_machine_info=True, disable_git=True, disable_code=True, save_code=False)
        return wandb.init(project=self.study, name=name, group=group, job_type=group, config=config, tags=tags,
                          dir=str(self.dir), mode=self.mode, reinit="create_new", settings=settings)

    def log_trial(self, record: TrialLog) -> None:
        run = self._init(record.run_name, "trials", record.params, [record.state])
        try:
            for row in record.epochs:
                run.log({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
            run.summary.update({**record.final_metrics(), **{f"tag.{k}": v for k, v in record.tags.items()}})
            if record.confusion is not None:
                rows = [[t, p, int(n)] for t, row in enumerate(record.confusion) for p, n in enumerate(row) if n]
                run.summary["confusion"] = record.confusion
                run.log({"confusion": wandb.Table(columns=["true", "predicted", "count"], data=rows)})
            run.summary["per_class_f1"] = {class_key(i): v for i, v in enumerate(record.per_class_f1)}
        finally:
            run.finish(exit_code=1 if record.state == "fail" else 0)

    def log_ensemble(self, record: EnsembleLog) -> None:
        run = self._init(record.run_name, "ensemble", record.params, ["ensemble", record.source])
        try:
            run.summary.update(record.metrics)
            run.summary["bundle"] = record.bundle
        finally:
            run.finish()
