"""Load and validate the competition layout (docs/domain.md) into plain tables.

    <root>/train/train.csv            id,gender,race,age,path   (one row per person)
    <root>/train/images/<path>/{mask1..mask5,incorrect_mask,normal}.{jpg,jpeg,png}
    <root>/eval/info.csv              ImageID[,ans]
    <root>/eval/images/<ImageID>

A person is a folder: ``001498-1`` and two folders of id ``003397`` are distinct people.
Dot files and macOS ``._*`` junk are ignored. Everything is validated before anything is
returned; a problem raises one :class:`DataError` and nothing is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from search.common.atomic import write_json
from search.data.check import (
    check_decodable,
    data_error,
    find_photos,
    list_folders,
    match_folders,
    parse_people,
    read_csv_strict,
    require_columns,
)
from search.data.errors import DataError
from search.data.labels import CANONICAL_CUTOFF, EXTENSIONS, MASK_OF_PHOTO, PHOTOS, age_band, class_id
from search.data.relabel import apply_relabel, read_relabel

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TrainData:
    """A validated training set; ``images`` rows are sorted by (person, photo order)."""

    root: Path  # the train folder (holding train.csv and images/)
    people: pd.DataFrame  # person, id, gender, race, age, csv_line, relabeled; index 0..P-1
    images: pd.DataFrame  # person, person_index, photo, path, mask, gender, age, label
    fingerprint: str  # files + train.csv + applied relabel fixes
    image_fingerprint: str  # image files only: the key for image caches

    @property
    def labels(self) -> npt.NDArray[np.int64]:
        """Canonical class per image row (old is >= 60): what validation is scored on."""
        return self.images["label"].to_numpy(dtype=np.int64)

    @property
    def paths(self) -> list[str]:
        return self.images["path"].tolist()

    @property
    def ages(self) -> npt.NDArray[np.int64]:
        """The person's real age per image row (train.csv, after relabel fixes): the ordinal head learns it."""
        return self.images["age"].to_numpy(dtype=np.int64)

    def training_labels(self, cutoff: int = CANONICAL_CUTOFF) -> npt.NDArray[np.int64]:
        """Class per image row with the old band starting at ``cutoff``; only the age band moves."""
        band = age_band(self.images["age"].to_numpy(dtype=np.int64), cutoff)
        return np.asarray(
            class_id(self.images["mask"].to_numpy(dtype=np.int64), self.images["gender"].to_numpy(), band),
            dtype=np.int64,
        )

    def person_classes(self) -> npt.NDArray[np.int64]:
        """Canonical gender * 3 + age band per person row (mask is constant per person)."""
        band = age_band(self.people["age"].to_numpy(dtype=np.int64))
        return self.people["gender"].to_numpy(dtype=np.int64) * 3 + np.asarray(band)


@dataclass(frozen=True, eq=False)
class EvalData:
    """A validated eval folder; ``info`` keeps info.csv's row order (a submission's order)."""

    root: Path  # the eval folder (holding info.csv and images/)
    info: pd.DataFrame  # info.csv columns plus ``path`` (absolute str)
    fingerprint: str

    @property
    def paths(self) -> list[str]:
        return self.info["path"].tolist()


def _resolve(root: Path | str, name: str, marker: str) -> Path:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist; pass the folder that holds {name}/.")
    if (root / name).is_dir():
        return root / name
    if (root / marker).exists() or (root / "images").is_dir():
        return root
    raise DataError(
        f"{root} holds neither {name}/{marker} nor {marker}; pass the data folder that contains "
        f"{name}/ (or the {name} folder itself)."
    )


def _hash_files(h: hashlib._Hash, base: Path, paths: Iterable[str]) -> None:
    for p in paths:
        st = os.stat(p)
        rel = Path(p).relative_to(base).as_posix()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())


def _verified_marker(verified_dir: Path | None, key: str) -> Path | None:
    return None if verified_dir is None else Path(verified_dir) / f"verified-{key[:32]}.json"


def _check_images(paths: list[str], key: str, verified_dir: Path | None, n_jobs: int) -> None:
    marker = _verified_marker(verified_dir, key)
    if marker is not None and marker.is_file():
        log.debug("images already verified (%s)", marker)
        return
    check_decodable(paths, n_jobs=n_jobs)
    if marker is not None:
        write_json(marker, {"fingerprint": key, "images": len(paths)}, indent=None)


def load_train(
    root: Path | str,
    relabel: Path | str | None = None,
    *,
    verified_dir: Path | str | None = None,
    n_jobs: int = -1,
) -> TrainData:
    """Validate and load ``root/train`` (or ``root`` when it is the train folder).

    ``relabel``: a relabel CSV (see :mod:`search.data.relabel`) applied before labelling.
    ``verified_dir``: where to remember that this exact set of files decoded, to skip the
    decode check next time (keyed by paths, sizes and mtimes). ``n_jobs``: decode threads.
    """
    train_dir = _resolve(root, "train", "train.csv")
    csv_path, images_dir = train_dir / "train.csv", train_dir / "images"
    people = parse_people(csv_path)
    fixes = read_relabel(relabel) if relabel is not None else []
    folders = list_folders(images_dir)
    match_folders(people, folders, csv_path, images_dir)
    photos = find_photos(images_dir, people["person"].tolist())

    rows = []
    for index, (folder, gender, age) in enumerate(
        zip(people["person"], people["gender"], people["age"], strict=True)
    ):
        for photo in PHOTOS:
            rows.append((folder, index, photo, str(photos[folder][photo]), MASK_OF_PHOTO[photo], gender, age))
    images = pd.DataFrame(rows, columns=["person", "person_index", "photo", "path", "mask", "gender", "age"])

    people_key = people[["person", "id", "gender", "race", "age"]].to_json(orient="values")
    people, images, applied = apply_relabel(fixes, people, images, relabel or "")  # cheap: before decoding

    h_img = hashlib.sha256(b"train-images-v1\n")
    _hash_files(h_img, train_dir, images["path"])
    image_fingerprint = h_img.hexdigest()
    _check_images(images["path"].tolist(), image_fingerprint, _opt_path(verified_dir), n_jobs)

    idx = images["person_index"].to_numpy()
    for col in ("gender", "age"):
        images[col] = people[col].to_numpy(dtype=np.int64)[idx]
    images["mask"] = images["mask"].astype("int64")
    images["label"] = np.asarray(
        class_id(images["mask"].to_numpy(), images["gender"].to_numpy(), age_band(images["age"].to_numpy()))
    )

    h = hashlib.sha256(b"train-v1\n")
    h.update(image_fingerprint.encode())
    h.update(people_key.encode())  # train.csv content, independent of its row order
    h.update(json.dumps(applied).encode())
    log.info(
        "loaded %d people, %d images from %s (%d fixes)", len(people), len(images), train_dir, len(applied)
    )
    return TrainData(train_dir, people, images, h.hexdigest(), image_fingerprint)


def load_recorded_train(
    root: Path | str, relabel: Path | str | None, fingerprint: str, *, verified_dir: Path | str | None = None
) -> TrainData:
    """``root``'s training data as a study recorded it (``load_train``), refused with a DataError
    when its fingerprint is no longer the ``fingerprint`` recorded: its photos or labels changed since."""
    data = load_train(root, relabel=relabel, verified_dir=verified_dir)
    if data.fingerprint != fingerprint:
        raise DataError(
            f"the data in {root} changed since the study ran on it (fingerprint {data.fingerprint[:12]}, "
            f"recorded {fingerprint[:12]}); use the data it ran on, or run a new study on this data."
        )
    return data


def _opt_path(p: Path | str | None) -> Path | None:
    return None if p is None else Path(p)


def _image_file(images_dir: Path, image_id: str, names: set[str]) -> str | None:
    if image_id in names:
        return image_id
    hits = [image_id + ext for ext in EXTENSIONS if image_id + ext in names]
    return hits[0] if len(hits) == 1 else None


def load_eval(root: Path | str, *, n_jobs: int = -1, check_images: bool = True) -> EvalData:
    """Validate and load ``root/eval`` (or ``root`` when it is the eval folder).

    An ``ImageID`` may carry its extension or not (``<id>.jpg`` is then looked up).
    """
    eval_dir = _resolve(root, "eval", "info.csv")
    csv_path, images_dir = eval_dir / "info.csv", eval_dir / "images"
    info = read_csv_strict(csv_path, "info.csv")
    require_columns(info, ["ImageID"], csv_path)
    if not images_dir.is_dir():
        raise DataError(f"image folder {images_dir} does not exist; it must sit beside info.csv.")
    names = {n for n in os.listdir(images_dir) if not n.startswith(".")}
    problems, paths, first = [], [], {}
    for image_id, line in zip(info["ImageID"].str.strip(), info["line"], strict=True):
        name = _image_file(images_dir, image_id, names) if image_id else None
        if not image_id:
            problems.append(f"info.csv line {line}: empty ImageID")
        elif image_id in first:
            problems.append(f"info.csv line {line}: ImageID {image_id!r} repeats line {first[image_id]}")
        elif name is None:
            problems.append(f"info.csv line {line}: ImageID {image_id!r} has no image in {images_dir}")
        first.setdefault(image_id, line)
        paths.append(str(images_dir / name) if name else "")
    if problems:
        raise data_error(f"{csv_path}", problems, "Restore the missing images or fix info.csv, then run again.")
    if info.empty:
        raise DataError(f"{csv_path} has a header but no rows; it needs one row per eval image.")
    if check_images:
        check_decodable(paths, n_jobs=n_jobs)
    info = info.drop(columns="line").assign(ImageID=info["ImageID"].str.strip(), path=paths)
    h = hashlib.sha256(b"eval-v1\n")
    h.update(hashlib.sha256(csv_path.read_bytes()).digest())
    _hash_files(h, eval_dir, paths)
    return EvalData(eval_dir, info.reset_index(drop=True), h.hexdigest())
