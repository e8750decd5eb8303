"""Who is on the real-face bench: one UTKFace face per person, in the real data's proportions.

People per (gender, age band) follow the real train set exactly (``allocate`` over the table in
docs/domain.md); ages within a band are drawn from the real age histogram, so 18-20 and 55-59 bulge. A
drawn age without faces left borrows the nearest age of the same band that has some (UTKFace has
no 19-year-olds, for one), and the label keeps the face's real age. Old people are all labelled
60, as in the real data: faces aged 60 come first, then 61, 62, ... up to ``OLD_MAX_AGE``.
Everything is decided by one seeded Generator, before any photo is drawn.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from runners.classes import GENDER_NAMES, YOUNG_CUTOFF
from search.benches.synth.people import AGE_COUNTS, CELL_COUNTS, EXT_COUNTS, MIN_AGE, OLD_AGE, allocate

from .catalog import RACES, Face

log = logging.getLogger(__name__)

OLD_MAX_AGE = 65  # faces older than this never stand in for a 60-year-old
BAND_AGES = (range(MIN_AGE, YOUNG_CUTOFF), range(YOUNG_CUTOFF, OLD_AGE), range(OLD_AGE, OLD_MAX_AGE + 1))


@dataclass(frozen=True)
class BenchPerson:
    """One person of the bench: the face drawn seven times, and the labels the bench gives it."""

    split: str  # "train" or "eval"
    index: int  # position in its split; with the seed it fixes the drawing
    face: Face
    age: int  # the label: the face's age, or 60 for the old band
    person_id: str = ""  # train only
    ext: str = ".jpg"

    @property
    def gender(self) -> int:
        return self.face.gender

    @property
    def folder(self) -> str:
        return f"{self.person_id}_{GENDER_NAMES[self.gender]}_{RACES[self.face.race]}_{self.age}"


class _Pools:
    """Faces left per (gender, age), each pool in a seeded random order."""

    def __init__(self, faces: list[Face], rng: np.random.Generator) -> None:
        by_key: dict[tuple[int, int], list[Face]] = defaultdict(list)
        for f in faces:
            by_key[(f.gender, f.age)].append(f)
        self._left = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by_key.items())}

    def available(self, gender: int, band: int) -> int:
        return sum(len(self._left.get((gender, a), [])) for a in BAND_AGES[band])

    def take(self, gender: int, band: int, age: int) -> Face:
        """A face of ``gender`` aged ``age``, or of the nearest age in the band that has one left."""
        if band == 2:  # old: 60 first, then the next oldest
            order = list(BAND_AGES[2])
        else:
            order = sorted(BAND_AGES[band], key=lambda a: (abs(a - age), a))
        for a in order:
            pool = self._left.get((gender, a))
            if pool:
                return pool.pop()
        raise ValueError(f"no {GENDER_NAMES[gender]} face left in ages {order[0]}-{order[-1]}")


def _split_people(n: int, split: str, pools: _Pools, rng: np.random.Generator) -> list[tuple[Face, int]]:
    """(face, label age) for ``n`` people of one split, in a random order."""
    cells = allocate(n, CELL_COUNTS, minimum=1 if n >= 6 else 0)
    drawn: list[tuple[Face, int]] = []
    for gender in range(2):
        for band in range(3):
            need = int(cells[gender, band])
            if need > pools.available(gender, band):
                raise ValueError(
                    f"the folder has {pools.available(gender, band)} {GENDER_NAMES[gender]} faces left in "
                    f"ages {BAND_AGES[band][0]}-{BAND_AGES[band][-1]} for {split}, which needs {need}; "
                    f"ask for fewer people."
                )
            ages = np.array(list(AGE_COUNTS[band]))
            p = np.array(list(AGE_COUNTS[band].values()), dtype=float)
            for age in rng.choice(ages, size=need, p=p / p.sum()):
                face = pools.take(gender, band, int(age))
                drawn.append((face, OLD_AGE if band == 2 else face.age))
    return [drawn[i] for i in rng.permutation(len(drawn))]


def plan_people(faces: list[Face], n_train: int, n_eval: int, seed: int) -> tuple[list[BenchPerson], list[BenchPerson]]:
    """Train people (sorted by folder, with ids and extensions) and eval people; no face twice."""
    if n_train < 6 or n_eval < 6:
        raise ValueError(f"need at least 6 train and 6 eval people (one per gender x age band), "
                         f"got {n_train} and {n_eval}")
    rng = np.random.default_rng([seed, 13])
    pools = _Pools(faces, rng)
    train_faces = _split_people(n_train, "train", pools, rng)
    eval_faces = _split_people(n_eval, "eval", pools, rng)
    numbers = np.sort(rng.choice(np.arange(1, int(n_train * 2.6) + 10), size=n_train, replace=False))
    exts = list(EXT_COUNTS)
    p_ext = np.array(list(EXT_COUNTS.values()), dtype=float)
    ext_of = rng.choice(exts, size=n_train, p=p_ext / p_ext.sum())
    train = [BenchPerson("train", i, face, age, person_id=f"{numbers[i]:06d}", ext=str(ext_of[i]))
             for i, (face, age) in enumerate(train_faces)]
    evals = [BenchPerson("eval", i, face, age) for i, (face, age) in enumerate(eval_faces)]
    borrowed = sum(1 for p in train + evals if p.face.age != p.age)
    if borrowed:
        log.info("%d old people are faces aged 61-%d, labelled 60", borrowed, OLD_MAX_AGE)
    return sorted(train, key=lambda p: p.folder), evals
