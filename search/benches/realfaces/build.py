"""Write a real-face bench: the competition's layout, with the eval labels outside the data.

    OUT/
      data/train/train.csv                 id,gender,race,age,path (one row per person)
      data/train/images/<path>/{mask1..mask5,incorrect_mask,normal}.{jpg,jpeg,png}
      data/eval/info.csv                   ImageID,ans (ImageIDs carry .jpg, as the real ones do)
      data/eval/images/<ImageID>
      eval_labels.csv                      ImageID,label,mask,gender,age_band,age  (never in data/)
      bench.json                           parameters, counts and which face each person is

Point the harness at ``OUT/data``. The tree is built in a hidden sibling folder and renamed into
place when complete, so an interrupted build leaves nothing half written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from runners.classes import GENDER_NAMES, MASK_NAMES, age_band
from search.benches.synth.people import class_of, hashed_image_id
from search.common.atomic import swap_dir, temp_dir
from search.common.outputs import Output, claim, marked_folder
from search.data.labels import MASK_OF_PHOTO, PHOTOS

from .catalog import RACES, read_exclude, read_faces
from .draw import draw_portrait, sample_scene
from .plan import BenchPerson, plan_people

log = logging.getLogger(__name__)

FORMAT = "mask-automl realfaces bench"
FORMAT_VERSION = 1
JPEG_QUALITY = 90
_SPLIT_CODE = {"train": 0, "eval": 1}


def real_eval_image_id(seed: int, index: int, stem: str) -> str:
    """The ImageID of eval person ``index``'s photo ``stem`` (search.benches.synth.people.hashed_image_id)."""
    return hashed_image_id("search.realfaces", seed, index, stem)


def eval_person_of_image(bench: Path) -> dict[str, int]:
    """ImageID -> the eval person it shows, for a bench this module built (its bench.json): eval ImageIDs
    are hashed, so whole people can only be resampled (a score's noise over people) through this."""
    record = json.loads((Path(bench) / "bench.json").read_text())
    seed = record["params"]["seed"]
    n_eval = sum(p["split"] == "eval" for p in record["people"])
    return {real_eval_image_id(seed, i, stem): i for i in range(n_eval) for stem in PHOTOS}


def _write_person(person: BenchPerson, faces_dir: Path, size: tuple[int, int], seed: int, data: Path) -> None:
    rng = np.random.default_rng([seed, _SPLIT_CODE[person.split], person.index])
    scene = sample_scene(rng)
    with Image.open(faces_dir / person.face.name) as im:
        chip = im.convert("RGB")
    for stem in PHOTOS:
        photo = draw_portrait(chip, scene, MASK_NAMES[MASK_OF_PHOTO[stem]], size, rng)
        if person.split == "eval":
            path = data / "eval" / "images" / real_eval_image_id(seed, person.index, stem)
        else:
            path = data / "train" / "images" / person.folder / f"{stem}{person.ext}"
        if path.suffix == ".png":
            photo.save(path, format="PNG")
        else:
            photo.save(path, format="JPEG", quality=JPEG_QUALITY)


def _write_tables(root: Path, train: list[BenchPerson], evals: list[BenchPerson], seed: int) -> None:
    data = root / "data"
    pd.DataFrame({"id": [p.person_id for p in train], "gender": [GENDER_NAMES[p.gender] for p in train],
                  "race": [RACES[p.face.race] for p in train], "age": [p.age for p in train],
                  "path": [p.folder for p in train]}).to_csv(data / "train" / "train.csv", index=False)
    rows = []
    for p in evals:
        band = age_band(p.age)
        for stem in PHOTOS:
            mask = MASK_OF_PHOTO[stem]
            rows.append((real_eval_image_id(seed, p.index, stem), class_of(mask, p.gender, p.age), mask, p.gender,
                         band, p.age))
    table = pd.DataFrame(rows, columns=["ImageID", "label", "mask", "gender", "age_band", "age"])
    table = table.iloc[np.random.default_rng([seed, 14]).permutation(len(table))]
    table.assign(ans=0)[["ImageID", "ans"]].to_csv(data / "eval" / "info.csv", index=False)
    table.to_csv(root / "eval_labels.csv", index=False)


def _people_record(people: list[BenchPerson]) -> list[dict]:
    return [{"split": p.split, "folder": p.folder or None, "face": p.face.name, "face_age": p.face.age,
             "age": p.age, "gender": GENDER_NAMES[p.gender]} for p in people]


def _not_a_bench(folder: Path) -> str | None:
    def ours(info: object) -> bool:
        return isinstance(info, dict) and info.get("format") == FORMAT

    return marked_folder(folder, "bench.json", ours, {"bench.json", "data", "eval_labels.csv"})


OUTPUT = Output("a real-face bench", "python -m search.realfaces", _not_a_bench)


def build(faces_dir: Path | str, out: Path | str, *, n_train: int = 700, n_eval: int = 300, seed: int = 0,
          size: tuple[int, int] = (384, 512), exclude: Path | str | None = None, overwrite: bool = False,
          n_jobs: int = -1, progress: bool = True) -> Path:
    """Build the bench into ``out`` (see the module docstring) and return ``out / "data"``.

    ``overwrite`` replaces ``out`` only when it is a bench this function wrote; anything else
    there is refused and left alone (search/common/outputs.py).
    """
    faces_dir, out = Path(faces_dir), Path(out)
    claim(out, OUTPUT, overwrite)
    width, height = size
    if not (32 <= width <= 4096 and 32 <= height <= 4096):
        raise ValueError(f"size must be WIDTHxHEIGHT with sides from 32 to 4096, got {width}x{height}")
    faces = read_faces(faces_dir, read_exclude(exclude))
    train, evals = plan_people(faces, n_train, n_eval, seed)

    with temp_dir(out) as tmp:
        data = tmp / "data"
        for p in train:
            (data / "train" / "images" / p.folder).mkdir(parents=True)
        (data / "eval" / "images").mkdir(parents=True)
        people = train + evals
        jobs = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=16)(
            joblib.delayed(_write_person)(p, faces_dir, size, seed, data) for p in people)
        for _ in tqdm(jobs, total=len(people), desc="drawing people", unit="person", disable=not progress):
            pass
        _write_tables(tmp, train, evals, seed)
        info = {"format": FORMAT, "version": FORMAT_VERSION,
                "params": {"faces": str(faces_dir), "exclude": str(exclude) if exclude else None,
                           "train_people": n_train, "eval_people": n_eval, "seed": seed, "size": [width, height]},
                "note": "Faces from UTKFace (non-commercial research licence): never commit this folder.",
                "people": _people_record(people)}
        (tmp / "bench.json").write_text(json.dumps(info, indent=1) + "\n")
        claim(out, OUTPUT, overwrite)  # again: something else may have appeared there meanwhile
        swap_dir(tmp, out)
    log.info("wrote a real-face bench of %d + %d people to %s", n_train, n_eval, out)
    return out / "data"
