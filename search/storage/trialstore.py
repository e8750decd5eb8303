"""What a study keeps on disk beside its Optuna storage, for the ensemble and the export.

    <workdir>/trials/<study>/
        validation.npz            rows, canonical labels and person of every validation image
        trial_00012/
            weights.safetensors   best-epoch weights (CPU tensors, never pickle)
            val_probs.npy         (N_val, NUM_CLASSES) float32 softmax, aligned with validation.npz rows
            last_weights.safetensors, last_val_probs.npy
                                  the last epoch's, only when it was not the best: the ensemble scores
                                  and ships a trial at its last epoch (search/ensembling/candidates.py)
            config.json           the TrialConfig dict
            result.json           the TrialResult summary

Only trials that could still enter an ensemble keep their folder: ``retain_top`` deletes the
rest. Every file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search.common.atomic import swap_dir, temp_dir, write_with
from search.common.outputs import Output, claim, marked_folder

LAST = "last_"  # prefix of the last epoch's files
_TRIAL_DIR = re.compile(r"^trial_(\d+)$")
TRIAL_FILES = {"weights.safetensors", "val_probs.npy", "config.json", "result.json",
               f"{LAST}weights.safetensors", f"{LAST}val_probs.npy"}


def not_a_trial_folder(folder: Path) -> str | None:
    """Why ``folder`` is not one :meth:`TrialStore.save_trial` wrote (search/common/outputs.py), or None:
    a folder holding only the files a trial saves (older ones may lack some)."""
    return marked_folder(folder, None, lambda _: True, TRIAL_FILES)


@dataclass(frozen=True)
class Validation:
    rows: np.ndarray  # int64 image rows of the data set, in the order of every val_probs file
    labels: np.ndarray  # int64 canonical classes
    people: np.ndarray  # str person (folder name) of each row
    fingerprint: str  # data fingerprint the rows refer to


class TrialStore:
    def __init__(self, workdir: Path | str, study_name: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", study_name)
        self.root = Path(workdir) / "trials" / safe

    # validation set -------------------------------------------------------------------------
    def save_validation(self, validation: Validation) -> None:
        path = self.root / "validation.npz"
        if path.exists():
            existing = self.load_validation()
            if existing.fingerprint != validation.fingerprint or not np.array_equal(
                existing.rows, validation.rows
            ):
                raise ValueError(
                    f"{path} holds the validation set of other data (fingerprint "
                    f"{existing.fingerprint[:12]}, now {validation.fingerprint[:12]}). A study is tied to "
                    "one data set: use a new study name, or delete the study and this folder."
                )
            return
        write_with(
            path,
            lambda f: np.savez(
                f,
                rows=validation.rows.astype(np.int64),
                labels=validation.labels.astype(np.int64),
                people=validation.people.astype(str),
                fingerprint=np.array(validation.fingerprint),
            ),
        )

    def load_validation(self) -> Validation:
        path = self.root / "validation.npz"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run the study first (python -m search.run).")
        with np.load(path, allow_pickle=False) as z:
            return Validation(z["rows"], z["labels"], z["people"], str(z["fingerprint"]))

    # trials ---------------------------------------------------------------------------------
    def trial_dir(self, number: int) -> Path:
        return self.root / f"trial_{number:05d}"

    def save_trial(
        self,
        number: int,
        state_dict: dict[str, Any],
        val_probs: np.ndarray,
        config: dict[str, Any],
        summary: dict[str, Any],
        last: tuple[dict[str, Any], np.ndarray] | None = None,
    ) -> Path:
        """The trial's folder; ``last``: the last epoch's weights and probabilities, when not the best's."""
        arrays = {"val_probs.npy": np.asarray(val_probs, dtype=np.float32)}
        weights = {}
        if last is not None:
            weights[f"{LAST}weights.safetensors"] = last[0]
            arrays[f"{LAST}val_probs.npy"] = np.asarray(last[1], dtype=np.float32)
        return write_model_dir(self.trial_dir(number), state_dict, config, summary, arrays, weights)

    def trial_numbers(self) -> list[int]:
        if not self.root.exists():
            return []
        found = (_TRIAL_DIR.match(p.name) for p in self.root.iterdir() if p.is_dir())
        return sorted({int(m.group(1)) for m in found if m})  # once each: trial_0099 and trial_00099 are 99

    def load_probs(self, number: int, last: bool = False) -> np.ndarray:
        """Validation probabilities of the best epoch, or (``last``) of the last one."""
        return np.load(self._file(number, "val_probs.npy", last), allow_pickle=False)

    def has_last(self, number: int) -> bool:
        """Whether the trial kept its last epoch apart (it was not the best); else both are the same
        epoch, or the trial was stored before trials kept their last epoch."""
        return (self.trial_dir(number) / f"{LAST}val_probs.npy").is_file()

    def load_config(self, number: int) -> dict[str, Any]:
        return json.loads((self.trial_dir(number) / "config.json").read_text())

    def weights_path(self, number: int, last: bool = False) -> Path:
        return self._file(number, "weights.safetensors", last)

    def _file(self, number: int, name: str, last: bool) -> Path:
        path = self.trial_dir(number) / f"{LAST}{name}"
        return path if last and path.is_file() else self.trial_dir(number) / name

    def retain(self, keep: set[int]) -> list[int]:
        """Delete every trial folder not in ``keep``; returns the numbers deleted."""
        deleted = [n for n in self.trial_numbers()  # never a folder a user made or added to
                   if n not in keep and not_a_trial_folder(self.trial_dir(n)) is None]
        for number in deleted:
            shutil.rmtree(self.trial_dir(number), ignore_errors=True)
        return deleted


def write_model_dir(
    final: Path, state_dict: dict[str, Any], config: dict[str, Any], summary: dict[str, Any],
    arrays: dict[str, np.ndarray], weights: dict[str, dict[str, Any]] | None = None,
    output: Output | None = None,
) -> Path:
    """A trained model's folder: weights.safetensors, config.json, result.json, ``arrays`` (file
    name -> array, saved with np.save) and ``weights`` (file name -> more state dicts, such as a
    trial's last epoch), written in a temporary folder and swapped in whole, so a reader sees the
    old folder or the complete new one (trials and refits alike).

    The temporary folder is locked while it is written (search.common.atomic.temp_dir), so
    search.clean never takes it for a leftover, and what a killed writer left beside ``final`` is
    removed first. With ``output``, ``final`` is replaced only when it is that writer's own
    (search.common.outputs.claim, checked just before the swap).
    """
    from safetensors.torch import save_file

    def cpu(tensors: dict[str, Any]) -> dict[str, Any]:
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    with temp_dir(final) as tmp:
        save_file(cpu(state_dict), str(tmp / "weights.safetensors"))
        for name, more in (weights or {}).items():
            save_file(cpu(more), str(tmp / name))
        for name, array in arrays.items():
            np.save(tmp / name, array)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / "result.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
        if output is not None:
            claim(final, output)
        swap_dir(tmp, final)  # a retried trial number never repeats, but a rerun of a test may
    return final
