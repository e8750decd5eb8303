"""Ensemble selection over a study's trials (numpy + scikit-learn) and its honest estimate.

``python -m search.ensemble --study NAME`` prints the comparison table; see :mod:`search.ensemble.cli`.
"""

from __future__ import annotations

from search.ensemble.honest import METHODS, Choice, HonestReport, choose, honest_estimate, person_halves
from search.ensemble.selection import (
    Candidate,
    Selection,
    SelectionSettings,
    accuracy,
    macro_f1,
    rank_singles,
    select,
    soft_vote,
    top_k,
)

__all__ = [
    "METHODS",
    "Candidate",
    "Choice",
    "HonestReport",
    "Selection",
    "SelectionSettings",
    "accuracy",
    "choose",
    "honest_estimate",
    "macro_f1",
    "person_halves",
    "rank_singles",
    "select",
    "soft_vote",
    "top_k",
]
