"""Write the synthetic data to disk in exactly the real competition layout (docs/domain.md).

    out_dir/
      train/train.csv                       id,gender,race,age,path (one row per person)
      train/images/<path>/{mask1..mask5,incorrect_mask,normal}.{jpg,jpeg,png}  (+ a few `._*` files)
      eval/info.csv                         ImageID,ans   (ans = 0, rows in a shuffled order)
      eval/images/<ImageID>                 40-hex names with .jpg (as info.csv has them), 7 per eval person
      eval_labels.csv                       ImageID,label   BENCH ONLY: the real data has no such file
      bench.json                            generation parameters and the injected faults

`eval_labels.csv` exists only so held-out scores on the bench can be computed honestly; code that
reads user data must never expect it. The whole tree is built in a temporary sibling folder and
renamed into place at the end, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from runners.classes import GENDER_NAMES, MASK_NAMES, age_band
from search.common.atomic import swap_dir, temp_dir
from search.common.outputs import Output, claim, marked_folder
from search.data.labels import MASK_OF_PHOTO, PHOTOS

from .faces import draw_photo, sample_look
from .people import (
    RACE,
    Person,
    class_of,
    eval_image_id,
    plan_eval,
    plan_train,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: ImageIDs carry .jpg
BENCH_NOTE = "search.synth bench"


def _not_a_bench(folder: Path) -> str | None:
    def ours(info: object) -> bool:
        return isinstance(info, dict) and str(info.get("note", "")).startswith(BENCH_NOTE)

    return marked_folder(folder, "bench.json", ours, {"bench.json", "eval_labels.csv", "train", "eval"})


OUTPUT = Output("a synthetic bench", "python -m search.synth", _not_a_bench)
JPEG_QUALITY = 90  # fixed so the same seed gives byte-identical files
MIN_PEOPLE = 6  # one person per (gender, age band) cell
MIN_SIDE, MAX_SIDE = 32, 4096
_SPLIT_CODE = {"train": 0, "eval": 1}
# Parallel processes pay off only above this many pixels in all (process start-up is ~1 s).
_PARALLEL_PIXELS = 60_000_000


def parse_size(text: str) -> tuple[int, int]:
    """'96x128' -> (96, 128): width x height, like the real 384x512 photos."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"size must be WIDTHxHEIGHT such as 96x128, got {text!r}")
    return int(parts[0]), int(parts[1])


def size_arg(text: str) -> tuple[int, int]:
    """``parse_size`` for argparse's ``type=``: a bad size is a usage error naming the value."""
    import argparse

    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def render_photos(person: Person, size: tuple[int, int], seed: int) -> dict[str, Image.Image]:
    """The seven photos of `person` as drawn, keyed by photo stem, before any on-disk swap."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[person.split], person.index])
    look = sample_look(rng, person.gender, person.age, age_band(person.age))
    return {stem: draw_photo(look, MASK_NAMES[MASK_OF_PHOTO[stem]], size, rng) for stem in PHOTOS}


def _save(img: Image.Image, path: Path) -> None:
    if path.suffix == ".png":
        img.save(path, format="PNG")
    else:
        img.save(path, format="JPEG", quality=JPEG_QUALITY)


def _apple_double(name: str) -> bytes:
    """A macOS AppleDouble resource file: magic, version, filler, then opaque bytes."""
    body = np.random.default_rng(list(name.encode())).integers(0, 256, 4072, dtype=np.uint8).tobytes()
    return b"\x00\x05\x16\x07\x00\x02\x00\x00" + b"Mac OS X        " + body


def _write_person(person: Person, size: tuple[int, int], seed: int, root: Path) -> None:
    photos = render_photos(person, size, seed)
    if person.split == "eval":
        for stem, img in photos.items():
            _save(img, root / "eval" / "images" / eval_image_id(seed, person, stem))
        return
    folder = root / "train" / "images" / person.folder
    folder.mkdir(parents=True)
    if person.swapped:
        photos["incorrect_mask"], photos["normal"] = photos["normal"], photos["incorrect_mask"]
    for stem, img in photos.items():
        _save(img, folder / f"{stem}{person.ext}")
    for junk in person.junk:
        (folder / junk).write_bytes(_apple_double(junk))


def _run_all(tasks: list[Person], size: tuple[int, int], seed: int, root: Path, n_jobs: int,
             progress: bool) -> None:
    bar = tqdm(total=len(tasks), desc="drawing people", unit="person", disable=not progress)
    try:
        if n_jobs == 1:
            for person in tasks:
                _write_person(person, size, seed, root)
                bar.update()
        else:
            jobs: Iterable[None] = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered",
                                                   batch_size=8)(
                joblib.delayed(_write_person)(person, size, seed, root) for person in tasks)
            for _ in jobs:
                bar.update()
    finally:
        bar.close()


def _check_args(people: int, size: tuple[int, int], n_eval_people: int) -> None:
    if not isinstance(people, int) or people < MIN_PEOPLE:
        raise ValueError(f"people must be an integer >= {MIN_PEOPLE} (one per gender x age band), "
                         f"got {people!r}")
    if not isinstance(n_eval_people, int) or n_eval_people < MIN_PEOPLE:
        raise ValueError(f"n_eval_people must be an integer >= {MIN_PEOPLE}, got {n_eval_people!r}")
    if len(size) != 2 or not all(isinstance(s, int) and MIN_SIDE <= s <= MAX_SIDE for s in size):
        raise ValueError(f"size must be (width, height) with each side from {MIN_SIDE} to {MAX_SIDE}, "
                         f"got {size!r}")


def _params(people: int, size: tuple[int, int], seed: int, n_eval_people: int) -> dict:
    return {"people": people, "size": list(size), "seed": seed, "n_eval_people": n_eval_people,
            "format": FORMAT_VERSION}


def generate(out_dir: Path | str, people: int = 300, size: tuple[int, int] = (96, 128), seed: int = 0,
             n_eval_people: int | None = None, progress: bool = True, *, overwrite: bool = False,
             n_jobs: int | None = None) -> Path:
    """Draw a synthetic data set into `out_dir` (see the module docstring) and return `out_dir`.

    `size` is (width, height). `n_eval_people` defaults to max(6, people // 3). An existing
    `out_dir` is replaced only with `overwrite`, and only when it is a bench this function wrote
    (search/common/outputs.py: anything else is refused and left alone); if another process finished the same
    bench (same parameters) first, its copy is kept. `n_jobs` defaults to all cores for large
    benches and 1 for small ones; the files do not depend on it.
    """
    out = Path(out_dir)
    size = parse_size(size) if isinstance(size, str) else tuple(size)  # type: ignore[assignment]
    n_eval = max(MIN_PEOPLE, people // 3) if n_eval_people is None else n_eval_people
    _check_args(people, size, n_eval)
    claim(out, OUTPUT, overwrite)  # before drawing anything: a refusal costs nothing
    if n_jobs is None:
        pixels = (people + n_eval) * len(PHOTOS) * size[0] * size[1]
        n_jobs = 1 if pixels < _PARALLEL_PIXELS else (os.cpu_count() or 1)

    rng = np.random.default_rng([seed, 2])
    train, faults = plan_train(people, rng)
    evals = plan_eval(n_eval, rng)
    with temp_dir(out) as tmp:
        for sub in ("train/images", "eval/images"):
            (tmp / sub).mkdir(parents=True)
        _run_all(train + evals, size, seed, tmp, n_jobs, progress)
        faults["loose_dot_files"] = _write_tables(tmp, train, evals, seed, rng)
        info = {"params": _params(people, size, seed, n_eval), "faults": faults,
                "counts": _counts(train, evals),
                "note": f"{BENCH_NOTE}: eval_labels.csv and this file exist only on the bench; "
                        "real data has neither."}
        (tmp / "bench.json").write_text(json.dumps(info, indent=2) + "\n")
        _move_into_place(tmp, out, info["params"], overwrite)
    log.info("wrote a synthetic data set of %d + %d people to %s", people, n_eval, out)
    return out


def _write_tables(root: Path, train: list[Person], evals: list[Person], seed: int,
                  rng: np.random.Generator) -> list[str]:
    """Write train.csv, info.csv, eval_labels.csv and the loose dot files; return the dot files."""
    pd.DataFrame({"id": [p.person_id for p in train], "gender": [GENDER_NAMES[p.label_gender] for p in train],
                  "race": RACE, "age": [p.age for p in train], "path": [p.folder for p in train]}
                 ).to_csv(root / "train" / "train.csv", index=False)
    rows = [(eval_image_id(seed, p, stem), class_of(MASK_OF_PHOTO[stem], p.gender, p.age))
            for p in evals for stem in PHOTOS]
    table = pd.DataFrame(rows, columns=["ImageID", "label"]).iloc[rng.permutation(len(rows))]
    table.assign(ans=0)[["ImageID", "ans"]].to_csv(root / "eval" / "info.csv", index=False)
    table.to_csv(root / "eval_labels.csv", index=False)
    # what a macOS archive brings along besides the `._*` files in person folders
    loose = ["train/images/.DS_Store", f"eval/images/._{table['ImageID'].iloc[0]}"]
    for rel in loose:
        (root / rel).write_bytes(_apple_double(rel))
    return loose


def _counts(train: list[Person], evals: list[Person]) -> dict:
    exts: dict[str, int] = {}
    for p in train:
        exts[p.ext] = exts.get(p.ext, 0) + len(PHOTOS)
    return {"train_people": len(train), "train_images": len(train) * len(PHOTOS),
            "eval_people": len(evals), "eval_images": len(evals) * len(PHOTOS),
            "train_extensions": dict(sorted(exts.items()))}


def _move_into_place(tmp: Path, out: Path, params: dict, overwrite: bool) -> None:
    if out.exists() and overwrite:
        claim(out, OUTPUT, overwrite)  # again: something else may have appeared there meanwhile
        swap_dir(tmp, out)
        return
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    try:
        tmp.rename(out)
    except OSError:
        # Another process finished first: keep its bench if it is the same one.
        try:
            theirs = json.loads((out / "bench.json").read_text())["params"]
        except (OSError, ValueError, KeyError):
            theirs = None
        if theirs != params:
            raise FileExistsError(f"{out} appeared while generating and holds a different bench "
                                  f"({theirs}); remove it and run again") from None
        log.info("%s was generated by another process meanwhile; keeping that copy", out)
