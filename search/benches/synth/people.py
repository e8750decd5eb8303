"""Who is in the synthetic data: the real proportions, the folder ids and the injected faults.

Everything here is decided by one numpy Generator in the parent process, before any image is
drawn, so the plan (and therefore every file) depends only on the seed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from runners.classes import CANONICAL_CUTOFF, GENDER_NAMES, age_band, class_id
from search.data.labels import PHOTOS

RACE = "Asian"  # the real train.csv has one value in this column
OLD_AGE = CANONICAL_CUTOFF  # every "old" person in the real data is exactly 60
MIN_AGE = 18  # the youngest person in the real data

# People per (gender, age band) in the real train set (docs/domain.md table).
CELL_COUNTS = np.array([[549, 410, 83], [732, 817, 109]], dtype=float)

# Real age histogram. docs/domain.md gives 18-20, 27-30 and 55-59 exactly; the rest is spread so the
# band totals (1,281 under 30, 1,227 from 30 to 59) match the table.
_YOUNG_AGES = {18: 192, 19: 407, 20: 267, 21: 110, 22: 80, 23: 60, 24: 45, 25: 35, 26: 29,
               27: 15, 28: 25, 29: 16}
_MIDDLE_AGES = {30: 17, **{a: 14 for a in range(31, 40)}, **{a: 28 for a in range(40, 50)},
                50: 42, 51: 44, 52: 46, 53: 48, 54: 51, 55: 100, 56: 123, 57: 106, 58: 159, 59: 85}
AGE_COUNTS: tuple[dict[int, int], ...] = (_YOUNG_AGES, _MIDDLE_AGES, {OLD_AGE: 192})

# Images per extension in the real train set; the bench decides the extension per person.
EXT_COUNTS = {".jpg": 18035, ".jpeg": 354, ".png": 511}

SUFFIX_SHARE = 41 / 2700  # ids like 001498-1
GENDER_FLIP_SHARE = 0.01  # wrong gender label in train.csv
SWAP_SHARE = 0.002  # incorrect_mask and normal photos swapped on disk
JUNK_SHARE = 0.02  # folders carrying macOS `._*` AppleDouble files


def class_of(mask: int, gender: int, age: int) -> int:
    """Canonical class of a photo of a person of this age (runners/classes.py)."""
    return int(class_id(mask, gender, age_band(age)))


@dataclass(frozen=True)
class Person:
    """One synthetic person. `gender` is what the drawing shows; `label_gender` goes in the CSV."""

    split: str  # "train" or "eval"
    index: int  # position in its split; with (seed, split) it seeds the drawing
    gender: int
    age: int
    label_gender: int
    person_id: str = ""  # train only
    ext: str = ".jpg"
    swapped: bool = False  # incorrect_mask and normal photos exchanged on disk
    junk: tuple[str, ...] = ()  # names of `._*` files in the folder

    @property
    def folder(self) -> str:
        return f"{self.person_id}_{GENDER_NAMES[self.label_gender]}_{RACE}_{self.age}"


def allocate(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Split `total` over cells in proportion to `weights` (largest remainder), each >= minimum."""
    flat = weights.ravel() / weights.sum()
    if total < minimum * flat.size:
        raise ValueError(f"cannot give {flat.size} cells at least {minimum} of {total}")
    ideal = flat * total
    counts = np.maximum(minimum, np.floor(ideal)).astype(int)
    while counts.sum() < total:
        counts[np.argmax(ideal - counts)] += 1
    while counts.sum() > total:
        over = np.where(counts > minimum, counts - ideal, -np.inf)
        counts[np.argmax(over)] -= 1
    return counts.reshape(weights.shape)


def _sample_people(n: int, rng: np.random.Generator, minimum: int) -> list[tuple[int, int]]:
    """(gender, age) for n people: exact cell proportions, ages drawn from the real histogram."""
    cells = allocate(n, CELL_COUNTS, minimum)
    out: list[tuple[int, int]] = []
    for gender in range(2):
        for band in range(3):
            ages = np.array(list(AGE_COUNTS[band]))
            p = np.array(list(AGE_COUNTS[band].values()), dtype=float)
            drawn = rng.choice(ages, size=cells[gender, band], p=p / p.sum())
            out.extend((gender, int(a)) for a in drawn)
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _pick(rng: np.random.Generator, candidates: list[int], k: int) -> list[int]:
    k = min(k, len(candidates))
    return sorted(int(i) for i in rng.choice(candidates, size=k, replace=False)) if k else []


def plan_train(people: int, rng: np.random.Generator) -> tuple[list[Person], dict]:
    """The train people with ids, extensions and faults; returns (people sorted by folder, faults)."""
    pairs = _sample_people(people, rng, minimum=min(3, people // 6))
    n = len(pairs)
    numbers = np.sort(rng.choice(np.arange(1, int(n * 2.6) + 10), size=n, replace=False))
    ids = [f"{num:06d}" for num in numbers]
    cell_size: dict[tuple[int, int], int] = {}
    for g, a in pairs:
        cell_size[(g, age_band(a))] = cell_size.get((g, age_band(a)), 0) + 1

    # Flip only people whose cell keeps others, so tiny benches still label every class.
    flippable = [i for i, (g, a) in enumerate(pairs) if cell_size[(g, age_band(a))] > 1]
    flipped = _pick(rng, flippable, max(1, round(GENDER_FLIP_SHARE * n)))
    n_swap = max(1 if n >= 100 else 0, round(SWAP_SHARE * n))
    swapped = _pick(rng, [i for i in range(n) if i not in flipped], n_swap)

    # One id used by two different people (different ages, so distinct folders), like 003397.
    plain = [i for i in range(n) if i not in flipped]
    dup: list[int] = []
    for j in rng.permutation(plain):
        partners = [k for k in plain if k != j and pairs[k][0] == pairs[j][0] and pairs[k][1] != pairs[j][1]]
        if partners:
            dup = [int(j), int(rng.choice(partners))]
            break
    if dup:
        ids[dup[1]] = ids[dup[0]]
    suffixed = _pick(rng, [i for i in range(n) if i not in dup], max(1, round(SUFFIX_SHARE * n)))
    for i in suffixed:
        ids[i] += "-1"

    exts = list(EXT_COUNTS)
    p_ext = np.array(list(EXT_COUNTS.values()), dtype=float)
    ext_of = [str(e) for e in rng.choice(exts, size=n, p=p_ext / p_ext.sum())]
    if n >= 20:  # guarantee the mix even on small benches
        for ext in (".jpeg", ".png"):
            if ext not in ext_of:
                ext_of[int(rng.choice([i for i in range(n) if ext_of[i] == ".jpg"]))] = ext

    junk_people = _pick(rng, list(range(n)), max(2, round(JUNK_SHARE * n)))
    plan = []
    for i, (g, a) in enumerate(pairs):
        junk: tuple[str, ...] = ()
        if i in junk_people:
            stems = sorted(rng.choice(PHOTOS, size=int(rng.integers(1, 4)), replace=False))
            junk = tuple(f"._{s}{ext_of[i]}" for s in stems)
        plan.append(Person(split="train", index=i, gender=g, age=a,
                           label_gender=1 - g if i in flipped else g, person_id=ids[i],
                           ext=ext_of[i], swapped=i in swapped, junk=junk))
    faults = {
        "gender_flipped": [{"index": i, "path": plan[i].folder, "csv_gender": GENDER_NAMES[plan[i].label_gender],
                            "drawn_gender": GENDER_NAMES[plan[i].gender]} for i in flipped],
        "incorrect_normal_swapped": [{"index": i, "path": plan[i].folder} for i in swapped],
        "suffixed_ids": sorted(plan[i].folder for i in suffixed),
        "duplicate_id": {"id": ids[dup[0]], "paths": sorted(plan[i].folder for i in dup)} if dup else None,
        "junk_files": sorted(f"train/images/{p.folder}/{j}" for p in plan for j in p.junk),
    }
    return sorted(plan, key=lambda p: p.folder), faults


def plan_eval(n: int, rng: np.random.Generator) -> list[Person]:
    """Eval people: the same proportions, no faults, all .jpg (as in the real eval folder)."""
    pairs = _sample_people(n, rng, minimum=min(1, n // 6))
    return [Person(split="eval", index=i, gender=g, age=a, label_gender=g) for i, (g, a) in enumerate(pairs)]


def hashed_image_id(namespace: str, seed: int, index: int, stem: str) -> str:
    """A 40-hex ImageID with its extension, as the real info.csv has it, fixed by the generator's
    namespace, the seed, the person's index and the photo."""
    return hashlib.sha1(f"{namespace}:{seed}:{index}:{stem}".encode()).hexdigest() + ".jpg"


def eval_image_id(seed: int, person: Person, stem: str) -> str:
    """The ImageID of a synthetic eval photo."""
    return hashed_image_id("search.synth", seed, person.index, stem)
