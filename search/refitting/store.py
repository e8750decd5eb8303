"""What a refit keeps on disk, beside its trial's folder in the study's TrialStore.

    <workdir>/trials/<study>/refit_00012/
        all/                      trained on every person (no held-out score)
            weights.safetensors   last-epoch weights
            config.json           the trial's TrialConfig dict, epochs set to the refit's
            result.json           the run's TrialResult summary
        folds-5/
            plan.json             the K folds: held-out people of each, seed, data fingerprint
            fold_0/ .. fold_4/    as all/, plus val_rows.npy and val_probs.npy (its held-out fold);
                                  result.json's cut_at_epoch: the time budget stopped it after that epoch
            oof.npz               out-of-fold probabilities of every image row, once each, its labels and people
            summary.json          out-of-fold macro-F1 over every person and on the study's validation people

A model folder is written under a temporary name and renamed when complete, so a killed refit
leaves either a whole fold or none, and a rerun trains only the missing ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.common.atomic import write_text, write_with
from search.common.outputs import Output, marked_folder
from search.storage.trialstore import TrialStore, write_model_dir

ALL = "all"
_REFIT_DIR = re.compile(r"^refit_(\d+)$")
_FOLDS_DIR = re.compile(r"^folds-(\d+)$")


MODEL_FILES = {"weights.safetensors", "config.json", "result.json", "val_rows.npy", "val_probs.npy"}
MODEL_OUTPUT = Output(
    "a refit model folder",
    "python -m search.refit",
    lambda folder: marked_folder(folder, "result.json", lambda r: isinstance(r, dict), MODEL_FILES),
    flag=None,
    option="the model folder",
)


class RefitError(ValueError):
    """A refit cannot go on (its folder belongs to other data or folds, a trial is unusable, ...)."""


@dataclass(frozen=True)
class FoldPlan:
    """K person folds of one study's data; fold i's people are held out by model i."""

    k: int
    seed: int
    fingerprint: str  # the data the people belong to
    folds: tuple[tuple[str, ...], ...]  # sorted held-out people of each fold

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "folds": [list(f) for f in self.folds],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Path) -> FoldPlan:
        try:
            return cls(
                int(d["k"]),
                int(d["seed"]),
                str(d["fingerprint"]),
                tuple(tuple(map(str, f)) for f in d["folds"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RefitError(
                f"{source} is not a fold plan ({exc!r}); delete its folds folder and refit again."
            ) from exc


@dataclass(frozen=True)
class SavedModel:
    folder: Path
    config: dict[str, Any]
    summary: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.folder / "weights.safetensors"


class RefitStore:
    """The refits of trial ``number`` of a study."""

    def __init__(self, trials: TrialStore, number: int) -> None:
        self.number = number
        self.root = trials.root / f"refit_{number:05d}"

    # layout ---------------------------------------------------------------------------------
    def all_dir(self) -> Path:
        return self.root / ALL

    def folds_dir(self, k: int) -> Path:
        return self.root / f"folds-{k}"

    def fold_dir(self, k: int, i: int) -> Path:
        return self.folds_dir(k) / f"fold_{i}"

    def fold_groups(self) -> list[int]:
        """The K of every fold group whose out-of-fold predictions are complete."""
        if not self.root.is_dir():
            return []
        found = (_FOLDS_DIR.match(p.name) for p in self.root.iterdir() if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m and (self.root / m.group(0) / "oof.npz").is_file())

    # fold plan ------------------------------------------------------------------------------
    def save_plan(self, plan: FoldPlan) -> None:
        """Write the plan, or check that the folder's existing plan is this one."""
        path = self.folds_dir(plan.k) / "plan.json"
        if path.is_file():
            old = self.load_plan(plan.k)
            if old != plan:
                raise RefitError(
                    f"{path} holds other folds (seed {old.seed}, data {old.fingerprint[:12]}) than this refit's "
                    f"(seed {plan.seed}, data {plan.fingerprint[:12]}); its fold models would not fit together. "
                    f"Delete {path.parent} to refit with the new folds."
                )
            return
        write_text(path, json.dumps(plan.to_dict(), indent=1))

    def load_plan(self, k: int) -> FoldPlan:
        path = self.folds_dir(k) / "plan.json"
        return FoldPlan.from_dict(json.loads(path.read_text()), path)

    # models ---------------------------------------------------------------------------------
    def has_model(self, folder: Path) -> bool:
        return (folder / "weights.safetensors").is_file() and (folder / "result.json").is_file()

    def cut_at(self, folder: Path) -> int | None:
        """The epoch after which the time budget stopped the model stored in ``folder``: kept, so that
        its group ships, and trained again by a later refit with the time; None: none stored, or whole."""
        if not self.has_model(folder):
            return None
        try:
            cut = json.loads((folder / "result.json").read_text()).get("cut_at_epoch")
        except (OSError, ValueError, AttributeError):
            return None
        return cut if isinstance(cut, int) and not isinstance(cut, bool) and cut > 0 else None

    def has_whole_model(self, folder: Path) -> bool:
        """A model is stored in ``folder`` and it ran all its epochs."""
        return self.has_model(folder) and self.cut_at(folder) is None

    def save_model(
        self,
        folder: Path,
        state_dict: dict[str, Any],
        config: dict[str, Any],
        summary: dict[str, Any],
        held_out: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Path:
        """One trained model; ``held_out`` = (image rows, probabilities) of the people it never saw."""
        arrays = {} if held_out is None else {
            "val_rows.npy": np.asarray(held_out[0], dtype=np.int64),
            "val_probs.npy": np.asarray(held_out[1], dtype=np.float32),
        }
        # temp_dir inside also removes what a killed refit left beside folder; the folder replaced
        # is an earlier model of this refit, or nothing
        return write_model_dir(folder, state_dict, config, summary, arrays, output=MODEL_OUTPUT)

    def load_model(self, folder: Path) -> SavedModel:
        return SavedModel(
            folder,
            json.loads((folder / "config.json").read_text()),
            json.loads((folder / "result.json").read_text()),
        )

    def load_held_out(self, folder: Path) -> tuple[np.ndarray, np.ndarray]:
        return np.load(folder / "val_rows.npy"), np.load(folder / "val_probs.npy")

    # out-of-fold ----------------------------------------------------------------------------
    def save_oof(
        self,
        k: int,
        rows: np.ndarray,
        probs: np.ndarray,
        fold: np.ndarray,
        summary: dict[str, Any],
        labels: np.ndarray | None = None,
        people: np.ndarray | None = None,
    ) -> None:
        """The out-of-fold predictions; ``labels``: the rows' canonical classes, which score a vote of
        fold groups over every person (search.ensembling.procedure); ``people``: the rows' persons,
        over whom that score's spread is drawn."""
        folder = self.folds_dir(k)
        extra = {} if labels is None else {"labels": np.asarray(labels, dtype=np.int64)}
        if people is not None:
            extra["people"] = np.asarray(people).astype(str)
        write_with(folder / "oof.npz", lambda f: np.savez(f, rows=rows, probs=probs, fold=fold, **extra))
        write_text(folder / "summary.json", json.dumps(summary, indent=2, sort_keys=True))

    def load_oof(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.load(self.folds_dir(k) / "oof.npz", allow_pickle=False) as z:
            return z["rows"], z["probs"], z["fold"]

    def load_oof_labels(self, k: int) -> np.ndarray | None:
        """The canonical class of each out-of-fold row; None for a group saved before they were kept."""
        with np.load(self.folds_dir(k) / "oof.npz", allow_pickle=False) as z:
            return z["labels"] if "labels" in z.files else None

    def load_oof_people(self, k: int) -> np.ndarray | None:
        """The person of each out-of-fold row; None for a group saved before they were kept."""
        with np.load(self.folds_dir(k) / "oof.npz", allow_pickle=False) as z:
            return z["people"] if "people" in z.files else None

    def load_summary(self, k: int) -> dict[str, Any]:
        return json.loads((self.folds_dir(k) / "summary.json").read_text())


def refit_numbers(trials: TrialStore) -> list[int]:
    """Trial numbers with a refit folder in this study's store."""
    if not trials.root.is_dir():
        return []
    found = (_REFIT_DIR.match(p.name) for p in trials.root.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)
