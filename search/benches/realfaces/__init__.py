"""A bench of real faces in the competition's layout, built from a folder of UTKFace photos.

    python -m search.realfaces --faces /path/to/UTKFace --exclude exclude.txt --out data/realfaces

UTKFace's file names carry each face's real age and gender (``<age>_<gender>_<race>_<date>...jpg``).
Every person of the bench is one such face; the builder draws the seven photos the competition
has per person (five masks, one worn on the nose or chin, one without) onto a portrait photo,
with the real data's proportions by gender and age band. Unlike the synthetic bench, a model's
score here says something about real faces: the age band is a real age seen in a real face.
"""

from __future__ import annotations

from .build import build
from .catalog import Face, read_faces
from .plan import plan_people

__all__ = ["Face", "build", "plan_people", "read_faces"]
