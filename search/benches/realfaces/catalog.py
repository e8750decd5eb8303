"""Read a folder of UTKFace-named photos: ``<age>_<gender>_<race>_<date>[...].jpg``.

gender 0 = male, 1 = female; race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others. Files whose
names do not parse (UTKFace has a few) are skipped and counted; names on the exclude list are
never read.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RACES = ("White", "Black", "Asian", "Indian", "Others")
_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_\d+.*\.(jpe?g|png)$", re.IGNORECASE)


@dataclass(frozen=True)
class Face:
    """One photo of the folder: its file and what its name says."""

    name: str
    age: int
    gender: int
    race: int


def parse_name(name: str) -> Face | None:
    """The face a UTKFace file name describes, or None when it does not follow the scheme."""
    m = _NAME.match(name)
    if m is None:
        return None
    return Face(name=name, age=int(m.group(1)), gender=int(m.group(2)), race=int(m.group(3)))


def read_exclude(path: Path | str | None) -> set[str]:
    """File names (one per line, blank lines and ``#`` comments ignored) never to be used."""
    if path is None:
        return set()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"exclude list {p} does not exist; pass the file that names the photos to leave out.")
    lines = (line.strip() for line in p.read_text().splitlines())
    return {Path(line).name for line in lines if line and not line.startswith("#")}


def read_faces(folder: Path | str, exclude: set[str] = frozenset()) -> list[Face]:
    """Every usable face in ``folder``, sorted by name (so the plan does not depend on listing order)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"face folder {root} does not exist; point --faces at a folder of UTKFace photos.")
    faces, unparsed, excluded = [], 0, 0
    for name in sorted(os.listdir(root)):
        if name.startswith("."):
            continue
        if name in exclude:
            excluded += 1
            continue
        face = parse_name(name)
        if face is None:
            unparsed += 1
            continue
        faces.append(face)
    if not faces:
        raise ValueError(f"{root} holds no photo named <age>_<gender>_<race>_<date>.jpg; is it a UTKFace folder?")
    log.info("%s: %d faces (%d excluded, %d names that do not parse skipped)", root, len(faces), excluded, unparsed)
    return faces
