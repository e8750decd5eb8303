"""Scores on the synthetic bench's eval labels: predict the eval images with the chosen members.

Only the benches have ``eval_labels.csv``: the synthetic bench beside ``train/`` and ``eval/``, the
real-face bench (``search.realfaces``) beside its data folder. With the real data there is nothing
to score against and this step is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from search.data import image_cache, load_eval
from search.deploy.graph import build_checkpoint, build_ensemble, torch_predict
from search.ensembling.decision import apply_offsets
from search.ensembling.honest import Choice
from runners.metrics import accuracy, macro_f1
from search.ensembling.selection import Candidate
from search.ensembling.votes import combine

log = logging.getLogger(__name__)

EVAL_LABELS = "eval_labels.csv"
_LABEL_COLUMNS = ("ans", "label", "class")


def find_eval_labels(data_root: Path | str | None) -> Path | None:
    """The bench's eval labels: inside the synthetic bench's root, or beside a real-face bench's data folder."""
    if data_root is None:
        return None
    root = Path(data_root)
    for path in (root / EVAL_LABELS, root.parent / EVAL_LABELS):
        if path.is_file():
            return path
    return None


def read_eval_labels(path: Path, image_ids: Sequence[str]) -> np.ndarray:
    """Labels aligned with ``image_ids`` (info.csv order); every id must have one."""
    table = pd.read_csv(path, dtype={"ImageID": str})
    column = next((c for c in _LABEL_COLUMNS if c in table.columns), None)
    if "ImageID" not in table.columns or column is None:
        raise ValueError(
            f"{path} must have columns ImageID and one of {list(_LABEL_COLUMNS)} "
            f"but has {list(table.columns)}."
        )
    labels = dict(zip(table["ImageID"].astype(str).str.strip(), table[column], strict=True))
    missing = [i for i in image_ids if i not in labels]
    if missing:
        raise ValueError(
            f"{path} has no label for ImageID {missing[0]!r} ({len(missing)} missing); regenerate the bench."
        )
    return np.asarray([int(labels[i]) for i in image_ids], dtype=np.int64)


def score_on_eval(
    candidates: Sequence[Candidate],
    choices: Sequence[Choice],
    data_root: Path,
    cache_dir: Path,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict[str, tuple[float, float]]:
    """{method: (macro-F1, accuracy)} of each choice on the bench's eval labels."""
    labels_path = find_eval_labels(data_root)
    if labels_path is None:
        raise FileNotFoundError(
            f"{Path(data_root) / EVAL_LABELS} does not exist: only the synthetic bench has eval labels."
        )
    data = load_eval(data_root, check_images=False)
    labels = read_eval_labels(labels_path, data.info["ImageID"].tolist())
    needed = sorted({m for c in choices for m in c.members})
    probs: dict[int, np.ndarray] = {}
    images_by_prep: dict[tuple[int, int, str], np.ndarray] = {}
    for m in needed:
        cand = candidates[m]
        prep = cand.preprocessing
        if prep not in images_by_prep:
            images_by_prep[prep] = image_cache(
                data.paths, prep[0], prep[1], prep[2], cache_dir, key=data.fingerprint
            )
        files = cand.weight_files()  # a fold group (search.refit) averages its K models
        if not files:
            raise ValueError(f"trial {cand.name} has no weights on disk; it cannot predict the eval images.")
        modules = [build_checkpoint(cand.config, f)[0] for f in files]
        log.info("predicting %d eval images with %s", len(labels), cand.name)
        probs[m] = torch_predict(build_ensemble(modules, [1.0] * len(modules)), images_by_prep[prep], batch_size, device)
    scores = {}
    for c in choices:
        vote = combine([probs[m] for m in c.members], c.weights, c.vote)
        vote = apply_offsets(vote, np.asarray(c.offsets) if c.offsets else None)
        scores[c.method] = (macro_f1(labels, vote), accuracy(labels, vote))
    return scores
