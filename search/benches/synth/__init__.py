"""The synthetic data: a procedurally drawn stand-in for the competition data, same layout.

    from search.benches.synth import generate, contact_sheet
    root = generate("data/synthetic", people=300, size=(96, 128), seed=0)
    contact_sheet(root, "synthetic.png")

or `python -m search.synth --out data/synthetic`. It exercises the harness end to end; scores on it
say nothing about accuracy on the real data.
"""

from __future__ import annotations

from .build import generate, parse_size, render_photos
from .people import Person, class_of
from .sheet import contact_sheet

__all__ = ["Person", "class_of", "contact_sheet", "generate", "parse_size",
           "render_photos"]
